"""The tensor plan both LiteRT runners share (the Interpreter's, ``litert.py``, and the CompiledModel's,
``compiled.py``): what a runner decides once per input or output tensor, so ``infer`` does no lookups."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liteship.runtime.quant import Quantizer, dequantize
from liteship.types import TensorSpec


@dataclass
class TensorPlan:
    """One input or output tensor of a runner.

    Attributes:
        spec: What the runner reports for the tensor.
        key: The name the runtime knows (signature input/output name, or tensor name).
        native: The shape the model was built (or compiled) with, batch included.
        dtype: The model's own dtype.
        convert: Quantize float feeds / dequantize outputs (a quantized tensor, ``raw`` off).
        index: The interpreter's tensor index (the Interpreter runner; -1 where unused).
        in_graph: The runtime quantizes: the model was given a float input and a QUANTIZE op
            (:mod:`liteship.model.float_input`), so ``dtype`` is float32 while ``spec`` keeps the
            quantized tensor's dtype, scale and zero point.
        current: The shape the runtime is allocated for (``native`` until a resize).
        size: Elements in ``native``.
    """

    spec: TensorSpec
    key: str
    native: tuple[int, ...]
    dtype: np.dtype
    convert: bool
    index: int = -1
    in_graph: bool = False
    current: tuple[int, ...] = field(init=False)
    size: int = field(init=False)
    quantizer: Quantizer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.current = self.native
        self.size = int(np.prod(self.native))

    def _quantizer(self) -> Quantizer:
        if self.quantizer is None:
            self.quantizer = Quantizer(self.spec.scale, self.spec.zero_point, self.dtype)  # type: ignore[arg-type]
        return self.quantizer

    def to_model(self, arr: np.ndarray) -> np.ndarray:
        """The feed in the model's dtype. A quantized feed lives in a buffer reused by the next call:
        the runtime copies it (``set_tensor``, a TensorBuffer's ``write``) before that."""
        if arr.dtype == self.dtype:
            return arr
        if self.in_graph:  # integers of the quantized dtype go back to the floats they stand for, exactly
            if arr.dtype.kind in "iu":
                return dequantize(arr, self.spec.scale, self.spec.zero_point)  # type: ignore[arg-type]
            return arr.astype(np.float32)
        if self.convert and arr.dtype.kind == "f":
            return self._quantizer()(arr)
        return arr.astype(self.dtype)

    def quantize_into(self, arr: np.ndarray, out: np.ndarray) -> None:
        """Quantize a float feed into ``out`` (e.g. the interpreter's input tensor, of the current shape)."""
        self._quantizer()(arr, out=out)

    def from_model(self, arr: np.ndarray) -> np.ndarray:
        """An output, dequantized when ``convert``."""
        return dequantize(arr, self.spec.scale, self.spec.zero_point) if self.convert else arr  # type: ignore[arg-type]


__all__ = ["TensorPlan"]
