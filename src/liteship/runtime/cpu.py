"""The CPU this process runs on, read once for every caller: its name and ISA (``/proc/cpuinfo``: the
bench report's ``machine.cpu`` and the agent's device profile use the one parser), and whether LiteRT's
CompiledModel accelerator libraries can load on it (AArch64 ``AT_HWCAP``).

ai-edge-litert 2.3's aarch64 accelerator library (``libLiteRtWebGpuAccelerator.so``) is built to require
LSE atomics, AES and CRC32 (ARMv8.1+ with the crypto extension). An ARMv8.0 core without them (the
Cortex-A53 of a Raspberry Pi 3 or Zero 2, the Cortex-A72 of a Pi 4) dies with SIGILL when LiteRT loads
it, which any CompiledModel (even ``accelerator="cpu"``) does; :func:`compiled_model_blocker` says so
before LiteRT is touched.
"""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path
from typing import Any

# /proc/cpuinfo flag → the profile's name, for the features XNNPACK dispatches on
X86_FEATURES = {
    "sse4_1": "sse4_1",
    "sse4_2": "sse4_2",
    "avx": "avx",
    "fma": "fma",
    "f16c": "f16c",
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vl": "avx512vl",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16",
    "avx512_fp16": "avx512_fp16",
    "amx_int8": "amx_int8",
}
ARM_FEATURES = {
    "asimd": "neon",  # AArch64 names Advanced SIMD "asimd"
    "neon": "neon",  # 32-bit ARM kernels say "neon"
    "asimdhp": "fp16",
    "asimddp": "dotprod",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
}
# ARM's "CPU implementer" 0x41 part numbers (Arm Ltd.) of cores found in edge boards
ARM_PARTS = {
    0xD03: "Cortex-A53",
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",
    0xD09: "Cortex-A73",
    0xD0A: "Cortex-A75",
    0xD0B: "Cortex-A76",
    0xD0C: "Neoverse-N1",
    0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1",
    0xD41: "Cortex-A78",
    0xD44: "Cortex-X1",
    0xD46: "Cortex-A510",
    0xD47: "Cortex-A710",
    0xD48: "Cortex-X2",
    0xD49: "Neoverse-N2",
    0xD4F: "Neoverse-V2",
}


MAX_NAME = 200


def _clean(value: Any) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    return text[:MAX_NAME] or None


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """``cpu_model``, ``isa`` and ``cores`` from the text of ``/proc/cpuinfo`` (x86 or ARM).

    On ARM the core names come from the "CPU part" numbers (a big.LITTLE SoC gives e.g.
    ``"Cortex-A55 + Cortex-A76"``); the ISA is the first core's feature list.
    """
    fields: dict[str, str] = {}
    processors, parts = 0, []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            processors += 1
        if key == "cpu part" and fields.get("cpu implementer", "").lower() == "0x41":
            try:
                name = ARM_PARTS.get(int(value, 16))
            except ValueError:
                name = None
            if name and name not in parts:
                parts.append(name)
        fields.setdefault(key, value)
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    table = X86_FEATURES if "flags" in fields else ARM_FEATURES
    isa = sorted({name for flag, name in table.items() if flag in flags})
    model = " + ".join(parts) or fields.get("model name") or fields.get("hardware")
    return {"cpu_model": _clean(model), "isa": isa, "cores": processors or None}


# AArch64 AT_HWCAP bits (Linux arch/arm64/include/uapi/asm/hwcap.h) and /proc/cpuinfo names of the
# features ai-edge-litert 2.3's aarch64 accelerator library needs (LiteRT#5675 is the same crash for dotprod)
AT_HWCAP = 16
ACCELERATOR_LIBRARY_NEEDS = {
    "atomics": (1 << 8, "LSE atomics (ARMv8.1)"),
    "aes": (1 << 3, "AES"),
    "crc32": (1 << 7, "CRC32"),
}


def read_cpuinfo() -> str:
    """The text of ``/proc/cpuinfo``; empty where there is none."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's name: x86's ``model name``, ARM's core names (``Cortex-A72``), else what Python says.

    Args:
        cpuinfo: The text of ``/proc/cpuinfo``. Defaults to reading it.
    """
    parsed = parse_cpuinfo(read_cpuinfo() if cpuinfo is None else cpuinfo)["cpu_model"]
    return parsed or platform.processor() or platform.machine() or "unknown"


def hwcap_of(features: str) -> int:
    """The ``AT_HWCAP`` bits of the features liteship checks, from a cpuinfo ``Features`` list (for
    fixtures and for systems where the auxiliary vector cannot be read)."""
    names = set(features.split())
    return sum(bit for name, (bit, _) in ACCELERATOR_LIBRARY_NEEDS.items() if name in names)


def read_hwcap() -> int | None:
    """This process's ``AT_HWCAP`` (Linux ``getauxval``; under qemu-user the emulated CPU's), else the
    first core's cpuinfo ``Features``; ``None`` when neither can be read."""
    try:
        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        value = int(getauxval(AT_HWCAP))
    except (OSError, AttributeError):
        value = 0
    return value or hwcap_from_cpuinfo(read_cpuinfo())


def hwcap_from_cpuinfo(text: str) -> int | None:
    """:func:`hwcap_of` the first core's ``Features`` line of a ``/proc/cpuinfo`` text; ``None`` without one."""
    for line in text.splitlines():
        if line.lower().startswith("features"):
            return hwcap_of(line.partition(":")[2])
    return None


def compiled_model_blocker(*, machine: str | None = None, hwcap: int | None = None) -> str | None:
    """Why LiteRT's CompiledModel cannot start on this CPU, or ``None`` when it can.

    Args:
        machine: ``platform.machine()``. Defaults to this machine's.
        hwcap: The ``AT_HWCAP`` bits. Defaults to this process's (:func:`read_hwcap`).

    Returns:
        A sentence naming the CPU and the missing features, or ``None`` (not AArch64, or every feature
        the accelerator library needs is there, or the capabilities cannot be read).
    """
    machine = platform.machine() if machine is None else machine
    if machine.lower() not in ("aarch64", "arm64"):
        return None
    hwcap = read_hwcap() if hwcap is None else hwcap
    if hwcap is None:
        return None
    missing = [what for bit, what in ACCELERATOR_LIBRARY_NEEDS.values() if not hwcap & bit]
    if not missing:
        return None
    return (
        f"this CPU ({cpu_name()}, an ARMv8.0 core) lacks {', '.join(missing)}, which ai-edge-litert's "
        "aarch64 accelerator library (libLiteRtWebGpuAccelerator.so) requires; LiteRT's CompiledModel "
        "loads it for every accelerator (cpu included) and the process would die with SIGILL"
    )


__all__ = [
    "parse_cpuinfo",
    "cpu_name",
    "read_cpuinfo",
    "read_hwcap",
    "hwcap_of",
    "hwcap_from_cpuinfo",
    "compiled_model_blocker",
]
