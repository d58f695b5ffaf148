"""Drift: the PSI of live top-1 confidence histograms against the package's reference histogram.

PSI (population stability index) = Σ (pᵢ − qᵢ)·ln(pᵢ/qᵢ) over shared bins, with empty bins smoothed.
Conventional reading, used here: < 0.1 stable, 0.1–0.2 ``warn``, ≥ 0.2 ``alert``. A window with fewer
than ``min_predictions`` predictions gives no verdict (its PSI is mostly sampling noise).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WARN = 0.1
ALERT = 0.2
MIN_PREDICTIONS = 500
_EPS = 1e-4


def psi(actual: Sequence[float], expected: Sequence[float]) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts or fractions, same bins).

    Args:
        actual: the live histogram.
        expected: the reference histogram.

    Returns:
        PSI ≥ 0; 0.0 when either histogram is empty.

    Raises:
        ValueError: the histograms have different numbers of bins.

    >>> round(psi([50, 50], [50, 50]), 6)
    0.0
    """
    if len(actual) != len(expected):
        raise ValueError(f"histograms have {len(actual)} and {len(expected)} bins; they must match")
    sa, se = float(sum(actual)), float(sum(expected))
    if sa <= 0 or se <= 0:
        return 0.0
    total = 0.0
    for a, e in zip(actual, expected, strict=True):
        p, q = max(a / sa, _EPS), max(e / se, _EPS)
        total += (p - q) * math.log(p / q)
    return total


def resample(counts: Sequence[float], edges: Sequence[float] | None, bins: int) -> list[float]:
    """Re-express a histogram on ``bins`` equal-width bins over [0, 1].

    Each source bin's count is spread uniformly over its range and split by overlap, so a reference
    recorded with other edges (e.g. 10 bins, or bins only over [0.5, 1]) compares with live data.

    Args:
        counts: the source counts.
        edges: the source bin edges (``len(counts) + 1``); None means equal-width bins over [0, 1].
        bins: the number of target bins.

    Raises:
        ValueError: edges do not match the counts or do not increase.
    """
    if edges is None:
        edges = [i / len(counts) for i in range(len(counts) + 1)]
    if len(edges) != len(counts) + 1 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"{len(edges)} increasing edges are needed for {len(counts)} counts")
    out = [0.0] * bins
    for c, lo, hi in zip(counts, edges, edges[1:], strict=False):
        lo_c, hi_c = max(lo, 0.0), min(hi, 1.0)
        if hi_c <= lo_c:
            continue
        for j in range(int(lo_c * bins), min(bins, int(math.ceil(hi_c * bins)))):
            overlap = min(hi_c, (j + 1) / bins) - max(lo_c, j / bins)
            if overlap > 0:
                out[j] += c * overlap / (hi - lo)
    return out


@functools.lru_cache(maxsize=256)
def _resampled(counts: tuple[float, ...], edges: tuple[float, ...] | None, bins: int) -> list[float]:
    """:func:`resample`, once per reference: every period of a version compares with the same one."""
    return resample(counts, edges, bins)


@dataclass(frozen=True)
class DriftPoint:
    """PSI of one period (e.g. an hour) of one model version against its reference."""

    start: float
    predictions: int
    psi: float | None
    level: str  # ok | warn | alert | insufficient

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "predictions": self.predictions, "psi": self.psi, "level": self.level}


def drift_level(value: float | None, predictions: int, *, min_predictions: int = MIN_PREDICTIONS) -> str:
    """``insufficient`` below the sample floor, else ``ok`` / ``warn`` (≥ 0.1) / ``alert`` (≥ 0.2)."""
    if value is None or predictions < min_predictions:
        return "insufficient"
    if value >= ALERT:
        return "alert"
    return "warn" if value >= WARN else "ok"


def drift_point(
    start: float,
    live: Sequence[int],
    reference: Sequence[float],
    reference_edges: Sequence[float] | None = None,
    *,
    min_predictions: int = MIN_PREDICTIONS,
) -> DriftPoint:
    """Evaluate one period: PSI of ``live`` (equal bins on [0, 1]) vs the reference (any edges)."""
    n = int(sum(live))
    if n < min_predictions:
        return DriftPoint(start, n, None, "insufficient")
    edges = None if reference_edges is None else tuple(reference_edges)
    value = psi(live, _resampled(tuple(reference), edges, len(live)))
    return DriftPoint(start, n, value, drift_level(value, n, min_predictions=min_predictions))
