"""InputGridRunner: a float model fed its inputs on an integer model's input grid.

An integer model with int8/uint8 inputs sees every input value rounded to ``scale · (q − zero_point)``
before its first op runs. Running the *float* model on inputs rounded the same way measures what that
rounding alone costs: the best any integer-input variant of the model can do, however its inside is
quantized (every op kept in float still gets these inputs). The accuracy repair uses it to tell a model
whose int8 *inputs* fail the gates — where only float32 model I/O can help — from one whose layers do.

Example:
    >>> from liteship.types import TensorSpec
    >>> spec = TensorSpec("x", (1, 2), "int8", scale=0.5, zero_point=0)
    >>> round_to_grid(np.array([[0.2, 0.3]], np.float32), spec).tolist()
    [[0.0, 0.5]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from liteship.errors import InferenceError
from liteship.runtime.base import Runner, WrappingRunner
from liteship.runtime.quant import dequantize, quantize
from liteship.types import TensorSpec


def round_to_grid(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """``x`` as a quantized input ``spec`` receives it: quantized as LiteRT's QUANTIZE does, then
    dequantized, in float32. A float ``spec`` returns ``x`` unchanged."""
    if not spec.quantized or spec.scale is None or spec.zero_point is None:
        return x
    return dequantize(quantize(x, spec.scale, spec.zero_point, spec.dtype), spec.scale, spec.zero_point)


class InputGridRunner(WrappingRunner):
    """Runs ``inner`` (a float model) with each input rounded to the grid of the matching input of
    ``grids`` (an integer model's input specs, paired by position).

    Args:
        inner: The float model's runner; its inputs must be float.
        grids: The integer model's input specs, one per input of ``inner``, in input order.

    Raises:
        InferenceError: The input counts differ, or an ``inner`` input is not float.
    """

    def __init__(self, inner: Runner, grids: Sequence[TensorSpec]) -> None:
        specs = inner.input_specs
        if len(specs) != len(grids):
            raise InferenceError(
                f"the float model has {len(specs)} input(s) and the integer model {len(grids)}: their inputs "
                "cannot be paired.",
                hint="Compare variants converted from the same source.",
            )
        not_float = [s.describe() for s in specs if np.dtype(s.dtype).kind != "f"]
        if not_float:
            raise InferenceError(
                f"rounding inputs to an integer grid needs a float model; these inputs are not float: "
                f"{'; '.join(not_float)}.",
                hint="Pass the float32 variant (recipe none) or the TensorFlow reference.",
            )
        super().__init__(inner)
        self.grids = list(grids)
        self.backend = f"{inner.backend}, inputs on the integer grid"
        self.name = f"{inner.name} (inputs rounded)"

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rounded = {
            s.name: round_to_grid(np.asarray(feed[s.name], np.float32), g)
            for s, g in zip(self.inner.input_specs, self.grids, strict=True)
        }
        return self.inner.infer(rounded)


__all__ = ["InputGridRunner", "round_to_grid"]
