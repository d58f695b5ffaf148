"""Issue 22 (15, 16): one CPU parser for bench and the agent, and LiteRT's CompiledModel refused (or, on
the agent, left for the Interpreter) on an ARMv8.0 core whose AT_HWCAP lacks what ai-edge-litert's aarch64
accelerator library needs (LSE atomics, AES, CRC32), before the library is loaded: loading it there is a
SIGILL. The Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76) are the real /proc/cpuinfo texts in tests/data."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from liteship.agent import profile
from liteship.bench import machine_info
from liteship.runtime import cpu
from liteship.runtime.compiled import AcceleratorError, CompiledModelRunner
from liteship.runtime.factory import device_runner
from liteship.runtime.litert import LiteRTRunner

CPUINFO = Path(__file__).resolve().parents[2] / "data" / "cpuinfo"
PI4 = (CPUINFO / "raspberry-pi-4.txt").read_text()
PI5 = (CPUINFO / "raspberry-pi-5.txt").read_text()


@pytest.fixture
def on_a_pi4(monkeypatch):
    """This process as a Raspberry Pi 4 sees itself: aarch64, the Pi 4's cpuinfo and its AT_HWCAP bits."""
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(cpu, "read_cpuinfo", lambda: PI4)
    monkeypatch.setattr(cpu, "read_hwcap", lambda: cpu.hwcap_from_cpuinfo(PI4))


def test_one_cpu_parser_names_the_pi_cores():
    assert machine_info(cpuinfo=PI4)["cpu"] == "Cortex-A72"  # was "aarch64": only x86's model name was read
    assert machine_info(cpuinfo=PI5)["cpu"] == "Cortex-A76"
    assert profile.parse_cpuinfo is cpu.parse_cpuinfo
    assert profile.device_profile(cpuinfo=PI4)["cpu_model"] == machine_info(cpuinfo=PI4)["cpu"]
    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: sse4_1 avx2\n"
    assert machine_info(cpuinfo=x86)["cpu"] == "AMD EPYC 7B13"


def test_hwcap_of_a_cortex_a72_blocks_the_compiled_model_and_a_cortex_a76_does_not():
    pi4, pi5 = cpu.hwcap_from_cpuinfo(PI4), cpu.hwcap_from_cpuinfo(PI5)
    assert pi4 == 1 << 7 and pi5 == (1 << 3) | (1 << 7) | (1 << 8)  # crc32 only; aes, crc32, atomics
    why = cpu.compiled_model_blocker(machine="aarch64", hwcap=pi4)
    assert why is not None and "LSE atomics (ARMv8.1), AES" in why and "CRC32" not in why
    assert "SIGILL" in why and "libLiteRtWebGpuAccelerator.so" in why
    assert cpu.compiled_model_blocker(machine="aarch64", hwcap=pi5) is None
    assert cpu.compiled_model_blocker(machine="x86_64", hwcap=0) is None


def test_compiled_model_is_refused_before_litert_loads_on_a_pi4(on_a_pi4, tflite_float):
    with pytest.raises(AcceleratorError) as e:
        CompiledModelRunner(str(tflite_float), accelerator="cpu")
    assert "Cortex-A72" in e.value.message and "LSE atomics" in e.value.message
    assert "Interpreter" in (e.value.hint or "")
    runner, why = device_runner(str(tflite_float), accelerator="gpu,cpu")  # the agent's path
    try:
        assert isinstance(runner, LiteRTRunner) and why is not None and "SIGILL" in why
    finally:
        runner.close()


def test_the_profile_lists_only_accelerators_that_can_load(on_a_pi4):
    assert profile.device_profile(cpuinfo=PI4, machine="aarch64")["accelerators"] == ["cpu"]
    here = profile.device_profile(cpuinfo=PI5, machine="aarch64")["accelerators"]
    assert here == profile.device_profile(machine="x86_64")["accelerators"]  # the library decides


def test_cli_run_on_a_pi4_is_one_error_line_not_sigill(tflite_float, digits, tmp_path):
    """``liteship run --accelerator cpu`` in a process that sees a Pi 4 (exit 132 before the fix)."""
    import numpy as np

    np.save(tmp_path / "x.npy", digits[2][:1])
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from liteship.runtime import cpu
        text = Path({str(CPUINFO / "raspberry-pi-4.txt")!r}).read_text()
        cpu.platform.machine = lambda: "aarch64"
        cpu.read_cpuinfo = lambda: text
        cpu.read_hwcap = lambda: cpu.hwcap_from_cpuinfo(text)
        from liteship.cli.main import main
        sys.argv = ["liteship", "run", {str(tflite_float)!r}, "--input", {str(tmp_path / "x.npy")!r},
                    "--accelerator", "cpu"]
        main()
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, (r.returncode, r.stderr)
    assert "CompiledModel cannot start" in lines[0] and "Cortex-A72" in lines[0], r.stderr
