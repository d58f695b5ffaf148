"""Reading and writing .tflite models without TensorFlow: verification, inspection, metadata, targets."""

from __future__ import annotations

from liteship.model.flatbuffer import (
    LoadedModel,
    load_model,
    read_liteship_info,
    write_liteship_info,
)

__all__ = [
    "LoadedModel",
    "load_model",
    "read_liteship_info",
    "write_liteship_info",
    "inspect_model",
    "InspectReport",
]


def __getattr__(name: str):  # inspect lives in its own module; import it on first use
    if name in ("inspect_model", "InspectReport"):
        from liteship.model import inspect as _inspect

        return getattr(_inspect, name)
    raise AttributeError(name)
