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

from liteship.errors import AgentError
from liteship.runtime.cpu import compiled_model_blocker, hwcap_from_cpuinfo, parse_cpuinfo

MAX_TEXT = 200  # the server bounds strings to this; so does the agent, before sending

# Tests (and lab benches) stand in for other hardware: a JSON object in this variable is laid over the
# profile read from the machine, e.g. {"machine": "aarch64", "isa": ["neon", "dotprod"]}.
PROFILE_ENV = "LITESHIP_AGENT_PROFILE"

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


def _accelerators(*, machine: str | None = None, hwcap: int | None = None) -> list[str]:
    """``["cpu"]``, plus ``"gpu"`` when LiteRT's GPU accelerator library is installed (no GPU init) and
    this CPU can load it (:func:`liteship.runtime.cpu.compiled_model_blocker`)."""
    found = ["cpu"]
    if compiled_model_blocker(machine=machine, hwcap=hwcap) is not None:
        return found
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
    *,
    cpuinfo: str | None = None,
    meminfo: str | None = None,
    accelerator: str = "cpu",
    machine: str | None = None,
) -> dict[str, Any]:
    """This device's hardware profile (see the module docstring for the fields).

    Args:
        cpuinfo: The text of ``/proc/cpuinfo``. Defaults to reading it (empty where there is none).
        meminfo: The text of ``/proc/meminfo``. Defaults to reading it.
        accelerator: The accelerator the agent runs its model on. Defaults to ``"cpu"``.
        machine: ``platform.machine()``. Defaults to this machine's. With ``cpuinfo``, the CPU's
            capabilities come from its ``Features`` line (a fixture of another device).

    Returns:
        A flat dict; fields that cannot be read are left out.
    """
    cpu = parse_cpuinfo(_read("/proc/cpuinfo") if cpuinfo is None else cpuinfo)
    hwcap = None if cpuinfo is None else hwcap_from_cpuinfo(cpuinfo)
    profile: dict[str, Any] = {
        "machine": _text(machine or platform.machine()),
        "cpu_model": cpu["cpu_model"] or _text(platform.processor()),
        "cores": os.cpu_count() if cpuinfo is None else cpu["cores"],
        "isa": cpu["isa"],
        "memory_mb": parse_meminfo(_read("/proc/meminfo") if meminfo is None else meminfo),
        "os": _os_name(),
        "python": platform.python_version(),
        "litert": _version("ai-edge-litert", "tflite-runtime"),
        "liteship": _version("liteship"),
        "accelerators": _accelerators(machine=machine, hwcap=hwcap),
        "accelerator": _text(accelerator),
    }
    return {k: v for k, v in {**profile, **profile_override()}.items() if v is not None}


def profile_override() -> dict[str, Any]:
    """The fields of ``$LITESHIP_AGENT_PROFILE`` (a flat JSON object), or none when unset.

    Raises:
        AgentError: the variable is set but is not a flat JSON object.
    """
    import json

    text = os.environ.get(PROFILE_ENV)
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raw = None
    flat = isinstance(raw, dict) and all(
        isinstance(v, str | int | float | bool)
        or (isinstance(v, list) and all(isinstance(i, str) for i in v))
        for v in raw.values()
    )
    if not flat:
        raise AgentError(
            f"${PROFILE_ENV} must be a flat JSON object (strings, numbers, lists of strings); got {text[:80]!r}.",
            hint='For example {"machine": "aarch64", "isa": ["neon", "dotprod"]}, or unset it.',
        )
    assert isinstance(raw, dict)
    return raw


__all__ = ["PROFILE_ENV", "device_profile", "parse_cpuinfo", "parse_meminfo", "profile_override"]
