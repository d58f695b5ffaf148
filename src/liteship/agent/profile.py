"""The device's hardware profile, sent at enrollment and in every check-in's ``runtime``.

A flat JSON object (the contract shared with the server; every field optional there)::

    {"machine": "aarch64", "cpu_model": "Cortex-A76", "cores": 4, "isa": ["neon", "dotprod"],
     "memory_mb": 8064, "os": "Debian GNU/Linux 12 (bookworm); Linux 6.6.31", "python": "3.11.2",
     "litert": "2.3.0", "liteship": "0.1.0", "accelerators": ["cpu"], "accelerator": "cpu"}

Everything is read cheaply, without running a model or initializing a GPU: ``/proc/cpuinfo`` (ISA
features that matter to XNNPACK's kernels, the CPU model), ``/proc/meminfo``, ``/etc/os-release``, the
installed packages' metadata, and whether LiteRT's GPU accelerator library is installed (``"gpu"`` in
``accelerators`` means the library is there, not that a GPU was probed).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
from pathlib import Path
from typing import Any

MAX_TEXT = 200  # the server bounds strings to this; so does the agent, before sending

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
GPU_LIBRARY = re.compile(r"^libLiteRt\w*(Gpu|OpenCl|WebGpu|Metal)\w*Accelerator\w*\.(so|dylib|dll)$", re.I)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:MAX_TEXT] or None


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


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
    return {"cpu_model": _text(model), "isa": isa, "cores": processors or None}


def parse_meminfo(text: str) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in MiB."""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.M)
    return int(m[1]) // 1024 if m else None


def _os_name() -> str | None:
    release = _read("/etc/os-release")
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', release, re.M)
    kernel = f"{platform.system()} {platform.release()}".strip()
    return _text(f"{m[1]}; {kernel}" if m else kernel)


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return _text(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _accelerators() -> list[str]:
    """``["cpu"]``, plus ``"gpu"`` when LiteRT's GPU accelerator library is installed (no GPU init)."""
    found = ["cpu"]
    spec = importlib.util.find_spec("ai_edge_litert")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            if any(GPU_LIBRARY.match(name) for name in os.listdir(folder)):
                found.append("gpu")
                break
        except OSError:
            continue
    return found


def device_profile(
    *, cpuinfo: str | None = None, meminfo: str | None = None, accelerator: str = "cpu"
) -> dict[str, Any]:
    """This device's hardware profile (see the module docstring for the fields).

    Args:
        cpuinfo: The text of ``/proc/cpuinfo``. Defaults to reading it (empty where there is none).
        meminfo: The text of ``/proc/meminfo``. Defaults to reading it.
        accelerator: The accelerator the agent runs its model on. Defaults to ``"cpu"``.

    Returns:
        A flat dict; fields that cannot be read are left out.
    """
    cpu = parse_cpuinfo(_read("/proc/cpuinfo") if cpuinfo is None else cpuinfo)
    profile: dict[str, Any] = {
        "machine": _text(platform.machine()),
        "cpu_model": cpu["cpu_model"] or _text(platform.processor()),
        "cores": os.cpu_count() if cpuinfo is None else cpu["cores"],
        "isa": cpu["isa"],
        "memory_mb": parse_meminfo(_read("/proc/meminfo") if meminfo is None else meminfo),
        "os": _os_name(),
        "python": platform.python_version(),
        "litert": _version("ai-edge-litert", "tflite-runtime"),
        "liteship": _version("liteship"),
        "accelerators": _accelerators(),
        "accelerator": _text(accelerator),
    }
    return {k: v for k, v in profile.items() if v is not None}


__all__ = ["device_profile", "parse_cpuinfo", "parse_meminfo"]
