"""``TorchModel`` (a PyTorch module with the sample inputs that fix its shapes) and how to recognise a
PyTorch object without importing torch: what ``convert.sources.source_kind`` needs, kept apart from the
PyTorch frontend (``torch_source.py``) so recognising a source imports no frontend."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


def is_torch_object(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`TorchModel` or an ``nn.Module`` (without importing torch)."""
    if isinstance(obj, TorchModel):
        return True
    if "torch" not in sys.modules:
        return False
    import torch

    return isinstance(obj, torch.nn.Module)


@dataclass(frozen=True)
class TorchModel:
    """A PyTorch module and the sample inputs that fix its input shapes (the module's own layout).

    Attributes:
        module: The ``torch.nn.Module`` (put in eval mode for conversion).
        sample_inputs: One tensor per ``forward`` argument, batch first (NCHW for images).
        label: A readable name for reports. Defaults to the module's class name.
    """

    module: Any
    sample_inputs: tuple[Any, ...]
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or type(self.module).__name__

    def nhwc_indices(self) -> list[int]:
        """The inputs that the .tflite takes channel-last (every 4-D input)."""
        return [i for i, x in enumerate(self.sample_inputs) if getattr(x, "ndim", 0) == 4]

    def tflite_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{input name: shape}`` as the .tflite takes them (NHWC for 4-D inputs)."""
        nhwc = set(self.nhwc_indices())
        out = {}
        for i, x in enumerate(self.sample_inputs):
            shape = tuple(int(d) for d in x.shape)
            out[f"args_{i}"] = (shape[0], *shape[2:], shape[1]) if i in nhwc else shape
        return out


__all__ = ["TorchModel", "is_torch_object"]
