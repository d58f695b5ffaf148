"""Memory: the model's tensors as the interpreter allocates them, and the process's resident memory
(/proc/self/status on Linux, resource.getrusage for the peak elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from liteship.model.flatbuffer import has_data, load_model

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def current_rss_bytes() -> int | None:
    """Resident memory now (VmRSS), or ``None`` where /proc is not available."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> int | None:
    """The process's peak resident memory (VmHWM, else ``ru_maxrss``), or ``None`` if unknown."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    try:
        import resource
    except ImportError:  # Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # macOS reports bytes, Linux KiB


def tensor_bytes(runner: Any) -> int | None:
    """Bytes of the main graph's non-constant tensors at their allocated shapes, or ``None``.

    Constant tensors (weights) live in the model buffer and are counted by the model size; tensors the
    delegates add (packed weights, partition outputs) are not the model's own and are left out.
    """
    interp = getattr(runner, "_interp", None)  # LiteRTRunner's interpreter; other runners: unknown
    data = getattr(runner, "model_bytes", None)
    if interp is None or data is None:
        return None

    model = load_model(data).model
    tensors = model.subgraphs[0].tensors or [] if model.subgraphs else []
    constant = {i for i, b in enumerate(model.buffers or []) if has_data(b)}
    total = 0
    try:
        details = interp.get_tensor_details()
    except (ValueError, RuntimeError):
        return None
    for d in details:
        i = int(d["index"])
        if i >= len(tensors) or tensors[i].buffer in constant:
            continue
        total += int(np.prod(d["shape"], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize
    return total


def release_freed_memory() -> bool:
    """Give memory that is freed but kept by the C allocator back to the OS (glibc ``malloc_trim``).

    Without it a model loaded after another reuses the pages the first one freed, and its resident
    growth reads ~0. Returns whether it could be done (``False`` off glibc).
    """
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


__all__ = ["current_rss_bytes", "peak_rss_bytes", "release_freed_memory", "tensor_bytes"]
