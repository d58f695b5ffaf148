"""Top-1 confidence of a classifier output and its histogram: the one rule validate, the package's drift
reference and the device agent's telemetry all use, so drift compares like with like.

Core layer: stdlib + numpy only (the device imports it; no TensorFlow).

What the scores are is decided once per *model*, from its graph
(:func:`liteship.model.outputs.score_kind`: the op producing the output is SOFTMAX or LOGISTIC →
``"probabilities"``, anything else → ``"logits"``), and passed here as ``kind``:

- probabilities: a row's confidence is its largest value;
- logits: a row's confidence is the largest value of ``softmax(row)`` — also when the logits of some
  frame happen to lie in [0, 1];
- a row with NaN or ±Inf has confidence NaN, which the histogram counts in its first bin (a model that
  starts producing NaN on a device shows up as drift instead of vanishing from the histogram).

Only when the graph cannot say (``kind=None``: a reference runner with no .tflite, an output no op
produces) is it decided per row, from the values: a row whose values are all finite and in [0, 1] is
taken as probabilities, any other finite row as logits. Per row, not per batch, so a device seeing one
frame at a time and the reference computed over a whole validation set give the same number.

Example:
    >>> round(float(top1_confidence([2.0, 0.0])[0]), 4)  # logits (per-row rule)
    0.8808
    >>> float(top1_confidence([0.3, 0.7])[0])  # probabilities (per-row rule)
    0.7
    >>> round(float(top1_confidence([0.3, 0.7], kind="logits")[0]), 4)  # the graph says logits
    0.5987
    >>> confidence_counts([0.7, 0.88], bins=4)
    (0, 0, 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

BINS = 20  # equal bins on [0, 1]: [0, 0.05), …, [0.95, 1.0]
PROBABILITIES: Literal["probabilities"] = "probabilities"
LOGITS: Literal["logits"] = "logits"
ScoreKind = Literal["probabilities", "logits"]


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


def top1_confidence(scores: Sequence[float] | np.ndarray, kind: ScoreKind | None = None) -> np.ndarray:
    """The top-1 confidence of each row (see the module docstring for the rule).

    Args:
        scores: ``(N, classes)`` outputs, or one ``(classes,)`` vector (treated as one row). Further
            axes are flattened into the class axis.
        kind: What the model's graph says the scores are (``"probabilities"`` or ``"logits"``, from
            :func:`liteship.model.outputs.score_kind`). Defaults to None: decided per row from the
            values, for when the graph cannot say.

    Returns:
        ``(N,)`` float64 confidences in [0, 1], NaN for rows with a non-finite value.

    Raises:
        ValueError: ``scores`` is a scalar, or ``kind`` is none of the above.
    """
    if kind not in (None, PROBABILITIES, LOGITS):
        raise ValueError(f"kind must be {PROBABILITIES!r}, {LOGITS!r} or None (decide per row), got {kind!r}")
    x = _rows(scores)
    out = np.full(x.shape[0], np.nan)
    if x.shape[1] == 0:
        return out
    finite = np.all(np.isfinite(x), axis=1)
    if kind is None:
        probs = probability_rows(x)
    else:
        probs = finite if kind == PROBABILITIES else np.zeros_like(finite)
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
    "PROBABILITIES",
    "LOGITS",
    "ScoreKind",
    "probability_rows",
    "top1_confidence",
    "confidence_bins",
    "confidence_bin",
    "confidence_counts",
    "bin_edges",
]
