"""``liteship.quantize``: integer models that keep their accuracy.

* :func:`equalize` — cross-layer equalization of a Keras model (outlier channels, no float layer needed);
* :func:`correct_bias` — empirical bias correction of the int8 weight rounding, from calibration data;
* :func:`search_float_layers` — a sensitivity search for a minimal set of ops to keep in float, judged
  by the gate's own metric, behind a small :class:`FloatOpsBackend` interface.

TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

from liteship.quantize.bias import BiasCorrectionReport, correct_bias
from liteship.quantize.equalize import EqualizationReport, equalize
from liteship.quantize.search import (
    Budget,
    FloatOpsBackend,
    Measurement,
    QuantizableOp,
    Round,
    SearchResult,
    search_float_layers,
)

__all__ = [
    "equalize",
    "EqualizationReport",
    "correct_bias",
    "BiasCorrectionReport",
    "search_float_layers",
    "FloatOpsBackend",
    "QuantizableOp",
    "Measurement",
    "Round",
    "Budget",
    "SearchResult",
]
