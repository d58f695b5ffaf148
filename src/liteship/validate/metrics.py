"""Comparison metrics: error statistics per output, classifier agreement, confidence histograms.

Pure numpy over whole arrays (samples stacked on axis 0), so the numbers are exact, not streamed.
"""

from __future__ import annotations

import math

import numpy as np

from liteship import confidence
from liteship.validate.report import Agreement, ConfidenceHistogram, OutputStats

REL_FLOOR = 1e-9  # |ref| below this counts as this in relative errors
HISTOGRAM_BINS = confidence.BINS
TOP_K = 5


def output_stats(name: str, reference_name: str, cand: np.ndarray, ref: np.ndarray) -> OutputStats:
    """Error statistics of ``cand`` against ``ref`` (same shape), over finite elements of both.

    Example:
        >>> s = output_stats("y", "y", np.array([1.0, 2.0]), np.array([1.0, 2.5]))
        >>> s.max_abs_error, round(s.sqnr_db, 2)
        (0.5, 14.26)
    """
    c = np.asarray(cand, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    finite = np.isfinite(c) & np.isfinite(r)
    cf, rf = c[finite], r[finite]
    abs_err = np.abs(cf - rf)
    rel_err = abs_err / np.maximum(np.abs(rf), REL_FLOOR)
    noise = float(np.sum((rf - cf) ** 2))
    signal = float(np.sum(rf**2))
    if noise == 0.0:
        sqnr = math.inf
    elif signal == 0.0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(signal / noise)
    q50, q90, q99 = np.quantile(abs_err, [0.5, 0.9, 0.99]) if abs_err.size else (0.0, 0.0, 0.0)
    return OutputStats(
        name=name,
        reference_name=reference_name,
        shape=tuple(int(d) for d in np.shape(cand)),
        max_abs_error=float(abs_err.max()) if abs_err.size else 0.0,
        mean_abs_error=float(abs_err.mean()) if abs_err.size else 0.0,
        p50_abs_error=float(q50),
        p90_abs_error=float(q90),
        p99_abs_error=float(q99),
        max_rel_error=float(rel_err.max()) if rel_err.size else 0.0,
        mean_rel_error=float(rel_err.mean()) if rel_err.size else 0.0,
        cosine_similarity=_cosine(cf, rf),
        sqnr_db=sqnr,
        identical=bool(np.array_equal(c, r, equal_nan=True)),
        candidate_nan=int(np.isnan(c).sum()),
        candidate_inf=int(np.isinf(c).sum()),
        reference_nan=int(np.isnan(r).sum()),
        reference_inf=int(np.isinf(r).sum()),
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    if np.array_equal(a, b):  # exact: the dot product and the norms round differently under AVX-512
        return 1.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))  # rounding can step past ±1


def allclose_excess(cand: np.ndarray, ref: np.ndarray, rtol: float) -> float:
    """``max(|cand − ref| − rtol·|ref|)``: the allclose check passes when this is ≤ atol.

    NaN/Inf in the same place in both counts as equal; anywhere else, the excess is ``inf``.
    """
    c = np.asarray(cand, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    same = (np.isnan(c) & np.isnan(r)) | (np.isinf(c) & (c == r))
    finite = np.isfinite(c) & np.isfinite(r)
    if not np.all(same | finite):
        return math.inf
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(c[finite] - r[finite]) - rtol * np.abs(r[finite])))


def is_classifier(arr: np.ndarray) -> bool:
    """Rank 2 (batch, classes) with more than one class."""
    return arr.ndim == 2 and arr.shape[1] > 1


def agreement(name: str, cand: np.ndarray, ref: np.ndarray, labels: np.ndarray | None) -> Agreement:
    """Top-1/top-5 agreement of two ``(N, classes)`` outputs, and accuracies when ``labels`` are given.

    Top-1 uses ``np.argmax`` on each model's own output (first maximum on ties), exactly what one
    computes by hand; integer outputs need no dequantization since it keeps the order.
    """
    classes = int(ref.shape[1])
    c1, r1 = np.argmax(cand, axis=1), np.argmax(ref, axis=1)
    k = min(TOP_K, classes)
    topk = np.argsort(-np.asarray(cand, dtype=np.float64), axis=1, kind="stable")[:, :k]
    cand_acc = ref_acc = drop = None
    if labels is not None:
        cand_acc = float(np.mean(c1 == labels))
        ref_acc = float(np.mean(r1 == labels))
        drop = (ref_acc - cand_acc) * 100.0
    return Agreement(
        output=name,
        classes=classes,
        top1=float(np.mean(c1 == r1)),
        top5=float(np.mean(np.any(topk == r1[:, None], axis=1))),
        candidate_accuracy=cand_acc,
        reference_accuracy=ref_acc,
        accuracy_drop=drop,
    )


def confidence_histogram(
    name: str,
    cand: np.ndarray,
    bins: int = HISTOGRAM_BINS,
    kind: confidence.ScoreKind | None = None,
) -> ConfidenceHistogram:
    """Histogram of the top-1 confidence over ``bins`` equal bins on [0, 1].

    The confidence and the bins are :mod:`liteship.confidence`'s, the rule the device agent's telemetry
    and the package's drift reference use. ``kind`` is what the candidate's graph says the output is
    (:func:`liteship.model.outputs.score_kind`): probabilities keep their top value, logits go through
    softmax first. Defaults to None (the graph cannot say): decided per row, values all in [0, 1] are
    probabilities, anything else logits. A row with NaN/Inf counts in the first bin.
    """
    x = np.asarray(cand, dtype=np.float64)
    rows = x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)
    finite = np.all(np.isfinite(rows), axis=1)
    if kind is None:
        softmax = bool(np.any(finite & ~confidence.probability_rows(rows)))
    else:
        softmax = kind == confidence.LOGITS
    return ConfidenceHistogram(
        output=name,
        bins=confidence.bin_edges(bins),
        counts=confidence.confidence_counts(confidence.top1_confidence(rows, kind), bins),
        softmax_applied=softmax,
        scores=kind or "per row",
    )


__all__ = ["output_stats", "allclose_excess", "is_classifier", "agreement", "confidence_histogram"]
