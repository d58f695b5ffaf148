"""Validate a converted model against its reference: error statistics, agreement, gates, layerwise.

A Comparator after Polygraphy's ``Comparator.run``: both models run over the same samples, every output
is compared, and gates (``min_agreement``, ``max_accuracy_drop``, ``atol``/``rtol``, ``min_sqnr``) decide.

    >>> report = liteship.validate("model.tflite", "model.keras", "val.npz", min_agreement=0.99)  # doctest: +SKIP
    >>> report.passed, report.agreement[0].top1                                               # doctest: +SKIP
"""

from liteship.validate.core import validate
from liteship.validate.report import (
    Agreement,
    ConfidenceHistogram,
    GateResult,
    LayerStats,
    OutputStats,
    ValidationReport,
)

__all__ = [
    "validate",
    "ValidationReport",
    "OutputStats",
    "Agreement",
    "GateResult",
    "ConfidenceHistogram",
    "LayerStats",
]
