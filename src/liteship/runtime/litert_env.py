"""What the LiteRT runners share about their environment: package versions, usable cores, and how an
interpreter's error reads (the Interpreter runner, ``litert.py``, and the CompiledModel one, ``compiled.py``)."""

from __future__ import annotations

import os
import re


def dist_version(dist: str) -> str:
    """The installed version of ``dist``, ``?`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def first_line(e: BaseException) -> str:
    """The interpreter's message, first line; TFLite glues sentences without a space ("…opsNode 0")."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return re.sub(r"(?<=[a-z.])(?=Node number)", ". ", text).replace("..", ".")


def load_hint(text: str) -> str:
    """What to try when LiteRT cannot load a model, from its message."""
    if "Flex" in text or "Select TensorFlow" in text or "Regular TensorFlow ops" in text:
        return (
            "The model needs Select TensorFlow (Flex) ops, which the LiteRT builtin runtime cannot run. "
            "Re-convert without allow_select_tf_ops to see which layer produces them, or replace the layer."
        )
    if "custom" in text.lower():
        return "The model needs a custom op; register its kernel, or re-convert without custom ops."
    return "Inspect the model (liteship.inspect_model) to see its ops and what each target supports."


__all__ = ["cores", "dist_version", "first_line", "load_hint"]
