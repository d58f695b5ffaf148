"""Top-1 confidence of a classifier output and its histogram: the one rule validate, the package's drift
reference and the device agent's telemetry all use, so drift compares like with like.

Core layer: stdlib + numpy only (the device imports it; no TensorFlow).

The rule, per output row (one sample's scores):

- a row whose values are all finite and in [0, 1] is taken as probabilities (softmax, sigmoid, or
  dequantized int8 rows that do not sum to exactly 1); its confidence is its largest value;
- any other finite row is taken as logits: its confidence is the largest value of ``softmax(row)``;
- a row with NaN or ±Inf has confidence NaN, which the histogram counts in its first bin (a model that
  starts producing NaN on a device shows up as drift instead of vanishing from the histogram).

The rule is decided per row, not per batch, so a device seeing one frame at a time and the reference
computed over a whole validation set give the same number for the same output.

Example:
    >>> round(float(top1_confidence([2.0, 0.0])[0]), 4)  # logits
    0.8808
    >>> float(top1_confidence([0.3, 0.7])[0])  # probabilities
    0.7
    >>> confidence_counts([0.7, 0.88], bins=4)
    (0, 0, 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BINS = 20  # equal bins on [0, 1]: [0, 0.05), …, [0.95, 1.0]


def _rows(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("a confidence needs a vector of class scores, got a scalar")
    return x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1)


def probability_rows(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Which rows of ``scores`` (``(N, classes)``, or one ``(classes,)`` vector) count as probabilities.

    Returns:
        A boolean array, one entry per row: every value finite and in [0, 1].
    """
    x = _rows(scores)
    with np.errstate(invalid="ignore"):
        return np.all(np.isfinite(x) & (x >= 0.0) & (x <= 1.0), axis=1)


def top1_confidence(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """The top-1 confidence of each row (see the module docstring for the rule).

    Args:
        scores: ``(N, classes)`` outputs, or one ``(classes,)`` vector (treated as one row). Further
            axes are flattened into the class axis.

    Returns:
        ``(N,)`` float64 confidences in [0, 1], NaN for rows with a non-finite value.
    """
    x = _rows(scores)
    out = np.full(x.shape[0], np.nan)
    if x.shape[1] == 0:
        return out
    finite = np.all(np.isfinite(x), axis=1)
    probs = probability_rows(x)
    out[probs] = x[probs].max(axis=1)
    logits = finite & ~probs
    if logits.any():
        z = x[logits]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out[logits] = (e / e.sum(axis=1, keepdims=True)).max(axis=1)
    return out


def confidence_bins(confidence: Sequence[float] | np.ndarray, bins: int = BINS) -> np.ndarray:
    """The bin index of each confidence on ``bins`` equal bins over [0, 1] (1.0 is in the last bin;
    values outside [0, 1] are clipped; NaN goes to bin 0)."""
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)
    c = np.where(np.isfinite(c), np.clip(c, 0.0, 1.0), 0.0)
    return np.minimum((c * bins).astype(np.int64), bins - 1)


def confidence_bin(confidence: float, bins: int = BINS) -> int:
    """:func:`confidence_bins` of one value."""
    return int(confidence_bins([confidence], bins)[0])


def confidence_counts(confidence: Sequence[float] | np.ndarray, bins: int = BINS) -> tuple[int, ...]:
    """Counts per bin of :func:`confidence_bins` (``bins`` counts)."""
    return tuple(int(n) for n in np.bincount(confidence_bins(confidence, bins), minlength=bins))


def bin_edges(bins: int = BINS) -> tuple[float, ...]:
    """The ``bins + 1`` edges over [0, 1], rounded to 10 digits (so they read well in JSON)."""
    return tuple(round(i / bins, 10) for i in range(bins + 1))


__all__ = [
    "BINS",
    "probability_rows",
    "top1_confidence",
    "confidence_bins",
    "confidence_bin",
    "confidence_counts",
    "bin_edges",
]
