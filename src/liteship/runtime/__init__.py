"""Runners: one interface for LiteRT and the TensorFlow reference backends. No TensorFlow at import."""

from __future__ import annotations

from typing import Any

from liteship.runtime.base import Feed, Runner
from liteship.runtime.compiled import AcceleratorError, CompiledModelRunner
from liteship.runtime.delegates import DelegateSpec, DelegateUsage
from liteship.runtime.factory import open_runner
from liteship.runtime.litert import LiteRTRunner, interpreter_class, interpreter_module
from liteship.runtime.placement import Placement
from liteship.runtime.quant import dequantize, quantize

# Reference runners (TensorFlow/torch, imported lazily when first used).
_REFERENCE = ("KerasRunner", "SavedModelRunner", "TorchRunner", "open_reference", "reference_runner_for")

__all__ = [
    "Runner",
    "Feed",
    "LiteRTRunner",
    "CompiledModelRunner",
    "AcceleratorError",
    "Placement",
    "open_runner",
    "DelegateSpec",
    "DelegateUsage",
    "interpreter_class",
    "interpreter_module",
    "quantize",
    "dequantize",
    *_REFERENCE,
]


def __getattr__(name: str) -> Any:
    if name in _REFERENCE:
        from liteship.runtime import reference

        return getattr(reference, name)
    raise AttributeError(f"module 'liteship.runtime' has no attribute {name!r}")
