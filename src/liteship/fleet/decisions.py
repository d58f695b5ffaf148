"""A/B decision engine: is the candidate worse than the control? Pure functions on aggregated telemetry.

Each arm is summarised as :class:`ArmStats` (merged fixed-bin histograms and counters). :func:`decide`
returns ``wait`` until both arms reach the minimum sample, then ``halt`` if any check says the
candidate is worse beyond its threshold, else ``advance`` (or ``promote`` at the last stage). The
checks' numbers are computed for a ``wait`` too (a preview for the dashboard); they act only once the
minimum sample is reached.

Checks (every one is recorded with its numbers):

- confidence: one-sided Mann-Whitney U on the binned top-1 confidence (candidate lower), with
  ``p < alpha`` *and* Cliff's delta ≤ ``-confidence_effect_floor`` (tiny but significant shifts on
  large samples do not halt a rollout);
- PSI of the candidate's confidence histogram against the control's ≥ ``psi_max``;
- latency p95 ratio > ``latency_p95_ratio_max`` *and* p95 increase > ``latency_p95_floor_ms``, on paired
  figures: both arms' windows of the periods (``latency_pair_period_s``) in which both reported
  (:func:`liteship.fleet.aggregate.paired_latency`), so a busy machine slows both sides of the comparison;
- error rate increase > ``error_rate_increase_max``; rollback rate increase > ``rollback_rate_increase_max``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from liteship.fleet.drift import psi

DEFAULT_THRESHOLDS: dict[str, float] = {
    "min_predictions": 500,
    "min_devices": 10,
    "alpha": 0.01,
    "confidence_effect_floor": 0.1,
    "psi_max": 0.2,
    "latency_p95_ratio_max": 1.2,
    # the candidate's p95 must also exceed the control's by this much: noise on a sub-millisecond
    # model cannot halt a rollout (issue 22)
    "latency_p95_floor_ms": 0.5,
    # latency is compared on paired figures: only the periods of this length in which both arms reported
    "latency_pair_period_s": 300,
    "error_rate_increase_max": 0.01,
    "rollback_rate_increase_max": 0.05,
}


@dataclass
class ArmStats:
    """Aggregated telemetry of one arm (control or candidate) over the evaluation period."""

    predictions: int = 0
    errors: int = 0
    rollbacks: int = 0  # devices that rolled back (telemetry ``rollbacks`` or a revert event)
    devices: int = 0
    confidence_hist: list[int] = field(default_factory=list)
    latency_hist: list[int] = field(default_factory=list)
    latency_edges_ms: list[float] = field(default_factory=list)
    reverts: int = 0  # revert events reported at check-in (informative; the rate uses ``rollbacks``)
    skipped_windows: int = 0  # stored windows that failed the bounds and were left out

    @property
    def error_rate(self) -> float:
        total = self.predictions + self.errors
        return self.errors / total if total else 0.0

    @property
    def rollback_rate(self) -> float:
        return self.rollbacks / self.devices if self.devices else 0.0


@dataclass(frozen=True)
class Verdict:
    action: str  # wait | halt | advance | promote
    reasons: list[str]
    numbers: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mann_whitney_binned(control: list[int], candidate: list[int]) -> tuple[float, float, float]:
    """One-sided Mann-Whitney U test that the candidate's values are lower, on shared fixed bins.

    Values in one bin are ties. Uses the normal approximation with tie correction and continuity
    correction (the samples here are ≥ hundreds of predictions).

    Args:
        control: counts per bin of the control arm.
        candidate: counts per bin of the candidate arm (same bins).

    Returns:
        ``(u, p_value, cliffs_delta)``: U of the candidate (pairs where candidate > control, ties
        half), the one-sided p-value, and Cliff's delta = P(cand > ctrl) - P(cand < ctrl) in [-1, 1].
    """
    if len(control) != len(candidate):
        raise ValueError(f"histograms have {len(control)} and {len(candidate)} bins; they must match")
    n_ctrl, n_cand = sum(control), sum(candidate)
    if n_ctrl == 0 or n_cand == 0:
        return 0.0, 1.0, 0.0
    u, below = 0.0, 0
    for a, b in zip(control, candidate, strict=True):
        u += b * (below + 0.5 * a)
        below += a
    n = n_ctrl + n_cand
    ties = sum((a + b) ** 3 - (a + b) for a, b in zip(control, candidate, strict=True))
    mean = n_ctrl * n_cand / 2.0
    var = n_ctrl * n_cand / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    delta = 2.0 * u / (n_ctrl * n_cand) - 1.0
    if var <= 0:
        return u, 1.0, delta
    z = (u - mean + 0.5) / math.sqrt(var)
    p = 0.5 * math.erfc(-z / math.sqrt(2.0))
    return u, p, delta


def histogram_quantile(counts: list[int], edges: list[float], q: float) -> float | None:
    """Quantile from a histogram with bins ``[0,e0), [e0,e1), …, [e_last, inf)``, interpolated in a bin.

    The open last bin is taken as ``[e_last, 2·e_last)``. Returns None for an empty histogram.
    """
    total = sum(counts)
    if total == 0 or len(counts) != len(edges) + 1:
        return None
    lows = [0.0, *edges]
    highs = [*edges, 2.0 * edges[-1] if edges else 1.0]
    target, seen = q * total, 0
    for c, lo, hi in zip(counts, lows, highs, strict=True):
        if c and seen + c >= target:
            return lo + (hi - lo) * (target - seen) / c
        seen += c
    return highs[-1]


def _check(numbers: dict[str, Any], reasons: list[str], name: str, worse: bool, text: str) -> None:
    numbers.setdefault("checks", {})[name] = "worse" if worse else "ok"
    if worse:
        reasons.append(text)


def decide(
    control: ArmStats,
    candidate: ArmStats,
    *,
    stage_index: int,
    n_stages: int,
    thresholds: dict[str, float] | None = None,
) -> Verdict:
    """Compare the candidate arm with the control arm and say what the rollout should do next.

    Args:
        control: telemetry of devices running the control version.
        candidate: telemetry of devices running the candidate version.
        stage_index: the rollout's current stage (0-based).
        n_stages: number of stages; holding at the last one means ``promote``.
        thresholds: overrides of :data:`DEFAULT_THRESHOLDS`.

    Returns:
        A :class:`Verdict` with the action, human-readable reasons and every number used.
    """
    t = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    numbers: dict[str, Any] = {
        "control": _arm_numbers(control),
        "candidate": _arm_numbers(candidate),
        "thresholds": t,
    }
    arms = (("control", control), ("candidate", candidate))
    numbers["progress"] = {
        name: {
            "predictions": arm.predictions,
            "min_predictions": int(t["min_predictions"]),
            "devices": arm.devices,
            "min_devices": int(t["min_devices"]),
        }
        for name, arm in arms
    }
    numbers["waiting_for"] = sorted(
        [f"{name}.predictions" for name, arm in arms if arm.predictions < t["min_predictions"]]
        + [f"{name}.devices" for name, arm in arms if arm.devices < t["min_devices"]]
    )
    reasons: list[str] = []
    u, p, delta = mann_whitney_binned(control.confidence_hist, candidate.confidence_hist)
    numbers.update(mann_whitney_u=u, p_value=p, cliffs_delta=delta)
    _check(
        numbers,
        reasons,
        "confidence",
        p < t["alpha"] and delta <= -t["confidence_effect_floor"],
        f"candidate confidence is lower (Mann-Whitney p={p:.2g} < {t['alpha']}, Cliff's delta "
        f"{delta:.3f} ≤ -{t['confidence_effect_floor']})",
    )
    value = psi(candidate.confidence_hist, control.confidence_hist)
    numbers["psi"] = value
    _check(
        numbers,
        reasons,
        "psi",
        value >= t["psi_max"],
        f"confidence PSI vs control {value:.3f} ≥ {t['psi_max']}",
    )

    p95_c, p95_k = numbers["control"]["latency_p95_ms"], numbers["candidate"]["latency_p95_ms"]
    ratio = (p95_k / p95_c) if p95_c and p95_k is not None else None
    numbers["latency_p95_ratio"] = ratio
    floor = t["latency_p95_floor_ms"]
    _check(
        numbers,
        reasons,
        "latency_p95",
        ratio is not None and ratio > t["latency_p95_ratio_max"] and p95_k - p95_c > floor,
        f"latency p95 {p95_k:.2f} ms is {ratio:.2f}x the control's {p95_c:.2f} ms (max "
        f"{t['latency_p95_ratio_max']}x, and +{p95_k - p95_c:.2f} ms > the floor {floor:g} ms)"
        if ratio is not None
        else "",
    )
    d_err = candidate.error_rate - control.error_rate
    numbers["error_rate_increase"] = d_err
    _check(
        numbers,
        reasons,
        "error_rate",
        d_err > t["error_rate_increase_max"],
        f"error rate {candidate.error_rate:.2%} vs control {control.error_rate:.2%} "
        f"(+{d_err:.2%} > {t['error_rate_increase_max']:.2%})",
    )
    d_rb = candidate.rollback_rate - control.rollback_rate
    numbers["rollback_rate_increase"] = d_rb
    _check(
        numbers,
        reasons,
        "rollback_rate",
        d_rb > t["rollback_rate_increase_max"],
        f"rollback rate {candidate.rollback_rate:.2%} of devices vs control {control.rollback_rate:.2%} "
        f"(+{d_rb:.2%} > {t['rollback_rate_increase_max']:.2%})",
    )
    short = [
        f"{name} has {arm.predictions:,} predictions from {arm.devices:,} devices"
        for name, arm in arms
        if arm.predictions < t["min_predictions"] or arm.devices < t["min_devices"]
    ]
    if short:
        need = f"need ≥ {int(t['min_predictions']):,} predictions and ≥ {int(t['min_devices']):,} devices per arm"
        return Verdict("wait", [f"{s}; {need}" for s in short], numbers)
    if reasons:
        return Verdict("halt", reasons, numbers)
    if stage_index + 1 >= n_stages:
        return Verdict("promote", ["candidate held through the last stage"], numbers)
    return Verdict("advance", [f"candidate held at stage {stage_index + 1} of {n_stages}"], numbers)


def _arm_numbers(arm: ArmStats) -> dict[str, Any]:
    return {
        "predictions": arm.predictions,
        "devices": arm.devices,
        "errors": arm.errors,
        "rollbacks": arm.rollbacks,
        "reverts": arm.reverts,
        "skipped_windows": arm.skipped_windows,
        "error_rate": arm.error_rate,
        "rollback_rate": arm.rollback_rate,
        "latency_p95_ms": histogram_quantile(arm.latency_hist, arm.latency_edges_ms, 0.95),
        "confidence_mean": _hist_mean(arm.confidence_hist),
    }


def _hist_mean(counts: list[int]) -> float | None:
    total = sum(counts)
    if not total:
        return None
    width = 1.0 / len(counts)
    return sum(c * (i + 0.5) * width for i, c in enumerate(counts)) / total


def rebin_latency(counts: list[int], edges: list[float], target: list[float]) -> list[float]:
    """A latency histogram moved onto other edges, mass-preserving (its own function: see issue 21).

    Bins are ``[0,e0), [e0,e1), …, [e_last, inf)`` as in :func:`histogram_quantile`; a source bin's
    count is spread uniformly over it (the open last bin taken as ``[e_last, 2·e_last)``) and split
    between the target bins it overlaps; whatever lies beyond the target's last edge goes to its open
    last bin. Windows whose edges differ from the arm's are rebinned, never silently dropped.

    Returns:
        ``len(target) + 1`` counts (floats) summing to ``sum(counts)``.
    """
    if list(edges) == list(target):
        return [float(c) for c in counts]
    lows = [0.0, *edges]
    highs = [*edges, 2.0 * edges[-1] if edges else 1.0]
    bounds = [0.0, *target]
    out = [0.0] * (len(target) + 1)
    for c, lo, hi in zip(counts, lows, highs, strict=True):
        if not c:
            continue
        width = hi - lo
        for i, t_lo in enumerate(bounds):
            t_hi = bounds[i + 1] if i + 1 < len(bounds) else float("inf")
            overlap = min(hi, t_hi) - max(lo, t_lo)
            if overlap > 0:
                out[i] += c * overlap / width if width > 0 else c
            elif width == 0 and t_lo <= lo < t_hi:
                out[i] += c
    return out
