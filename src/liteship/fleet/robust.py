"""One device carries one device's weight: per-device parts of an arm, and verdicts no one device can turn.

A compromised device has a valid token and may send any window the schema admits. Three bounds keep
it to one device's say (issue 21):

1. **A window weighs what one device can plausibly produce in its duration.** The arm's median device
   rate (inferences per second of window, over each device's own history) times
   :data:`PLAUSIBLE_RATE_FACTOR` times the window's duration caps the inferences a window counts for;
   its histograms and errors are scaled with it. ``started = now - 6 d, inferences = 10**9`` then
   counts for what a busy device would do in six days, not for the arm.
2. **A device's share is capped.** After (1), no device counts for more than
   :data:`DEVICE_SHARE_FACTOR` times the arm's median device (by predictions).
3. **Latency histograms are merged on common edges.** The edges most devices use are the arm's edges;
   every other window is rebinned onto them (:func:`liteship.fleet.decisions.rebin_latency`), so a
   window with other edges neither vanishes nor hides the others.

(1) and (2) bound the damage; :func:`decide_robust` makes the guarantee: a verdict that would advance or
promote stands only if it does not turn into ``halt`` when any single device is left out. So when the
honest devices of both arms say ``halt``, nothing one other device sends turns it into ``advance``
(the property test in ``tests/integration/fleet/test_properties.py``).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from liteship.fleet import decisions
from liteship.fleet.decisions import ArmStats
from liteship.fleet.models import CONFIDENCE_BINS, Reverts, TelemetryWindow

PLAUSIBLE_RATE_FACTOR = 10.0  # a window counts at most this × the arm's median device rate × its duration
DEVICE_SHARE_FACTOR = 3.0  # a device counts for at most this × the arm's median device (predictions)
MIN_WINDOW_S = 1.0  # a window shorter than this is taken as this long (rates of zero-length windows)
MAX_HOLDOUTS = 500  # devices left out in turn per arm (the heaviest first) by decide_robust


def duration(w: TelemetryWindow) -> float:
    return max(float(w.ended) - float(w.started), MIN_WINDOW_S)


def common_edges(windows: Iterable[TelemetryWindow]) -> list[float]:
    """The latency edges used by the most devices (ties: by windows, then the smallest edges)."""
    devices: dict[tuple[float, ...], set[str]] = {}
    uses: Counter[tuple[float, ...]] = Counter()
    for w in windows:
        if w.latency_edges_ms:
            key = tuple(float(e) for e in w.latency_edges_ms)
            devices.setdefault(key, set()).add(w.device_id)
            uses[key] += 1
    if not devices:
        return []

    def rank(key: tuple[float, ...]) -> tuple[int, int, tuple[float, ...]]:
        return -len(devices[key]), -uses[key], key

    best: tuple[float, ...] = min(devices, key=rank)
    return list(best)


def device_parts(windows: list[TelemetryWindow], reverts: Reverts | None = None) -> dict[str, ArmStats]:
    """One :class:`ArmStats` per device of an arm, each bounded to one device's weight (see the module).

    ``windows`` must already be checked (:func:`liteship.fleet.aggregate.good_windows`). A device that
    reported a revert counts once towards the rollback rate, with or without windows.
    """
    by_device: dict[str, list[TelemetryWindow]] = {}
    for w in windows:
        by_device.setdefault(w.device_id, []).append(w)
    rates = [sum(w.inferences for w in ws) / sum(duration(w) for w in ws) for ws in by_device.values()]
    median_rate = statistics.median(rates) if rates else 0.0
    edges = common_edges(windows)
    parts = {d: _device_part(ws, median_rate, edges) for d, ws in by_device.items()}
    if parts:
        median_total = statistics.median(p.predictions for p in parts.values())
        cap = DEVICE_SHARE_FACTOR * max(median_total, 1)
        parts = {d: _scaled(p, cap / p.predictions) if p.predictions > cap else p for d, p in parts.items()}
    for r in reverts or []:
        part = parts.get(r.device_id)
        if part is None:  # (not setdefault: it would build an empty part for every revert)
            part = parts[r.device_id] = _empty(edges)
        part.reverts += 1
        part.rollbacks = 1
    return parts


def _empty(edges: list[float]) -> ArmStats:
    hist = [0] * (len(edges) + 1) if edges else []
    return ArmStats(
        devices=1, confidence_hist=[0] * CONFIDENCE_BINS, latency_hist=hist, latency_edges_ms=edges
    )


def _device_part(windows: list[TelemetryWindow], median_rate: float, edges: list[float]) -> ArmStats:
    """One device's windows merged, each window capped at a plausible count for its duration."""
    predictions = errors = 0.0
    confidence = [0.0] * CONFIDENCE_BINS
    latency = [0.0] * (len(edges) + 1) if edges else []
    for w in windows:
        ceiling = PLAUSIBLE_RATE_FACTOR * median_rate * duration(w)
        f = min(1.0, ceiling / w.inferences) if w.inferences else 1.0
        predictions += f * w.inferences
        errors += f * w.errors
        confidence = [a + f * b for a, b in zip(confidence, w.confidence_hist, strict=True)]
        if edges and w.latency_edges_ms:
            moved = decisions.rebin_latency(w.latency_hist, [float(e) for e in w.latency_edges_ms], edges)
            latency = [a + f * b for a, b in zip(latency, moved, strict=True)]
    return ArmStats(
        predictions=round(predictions),
        errors=round(errors),
        rollbacks=1 if any(w.rollbacks for w in windows) else 0,
        devices=1,
        confidence_hist=[round(c) for c in confidence],
        latency_hist=[round(c) for c in latency],
        latency_edges_ms=list(edges),
    )


def _scaled(part: ArmStats, f: float) -> ArmStats:
    return replace(
        part,
        predictions=round(part.predictions * f),
        errors=round(part.errors * f),
        confidence_hist=[round(c * f) for c in part.confidence_hist],
        latency_hist=[round(c * f) for c in part.latency_hist],
    )


def merge(parts: Iterable[ArmStats], *, skipped: int = 0) -> ArmStats:
    """The arm: the sum of its device parts (which share latency edges, see :func:`device_parts`)."""
    arm = ArmStats(confidence_hist=[0] * CONFIDENCE_BINS, skipped_windows=skipped)
    for p in parts:
        arm = _combine(arm, p, 1)
    return arm


def _combine(arm: ArmStats, part: ArmStats, sign: int) -> ArmStats:
    if part.latency_edges_ms and not arm.latency_edges_ms:
        arm = replace(
            arm, latency_edges_ms=list(part.latency_edges_ms), latency_hist=[0] * len(part.latency_hist)
        )
    latency = arm.latency_hist
    if part.latency_hist and len(part.latency_hist) == len(latency):
        latency = [a + sign * b for a, b in zip(latency, part.latency_hist, strict=True)]
    return replace(
        arm,
        predictions=arm.predictions + sign * part.predictions,
        errors=arm.errors + sign * part.errors,
        rollbacks=arm.rollbacks + sign * part.rollbacks,
        devices=arm.devices + sign * part.devices,
        reverts=arm.reverts + sign * part.reverts,
        confidence_hist=[
            a + sign * b for a, b in zip(arm.confidence_hist, part.confidence_hist, strict=True)
        ],
        latency_hist=latency,
    )


def decide_robust(
    control: dict[str, ArmStats],
    candidate: dict[str, ArmStats],
    *,
    skipped: tuple[int, int] = (0, 0),
    **kw: Any,
) -> decisions.Verdict:
    """:func:`liteship.fleet.decisions.decide` on the merged arms, then again with each device left out
    in turn (the :data:`MAX_HOLDOUTS` heaviest of each arm): an ``advance`` or ``promote`` that one
    device's absence turns into ``halt`` is a ``halt``, with that device named in the numbers.

    Args:
        control: Device parts of the control arm (:func:`device_parts`).
        candidate: Device parts of the candidate arm.
        skipped: Stored windows of each arm that failed the bounds (reported, not used).
        **kw: ``stage_index``, ``n_stages``, ``thresholds`` of :func:`decisions.decide`.
    """
    arms = {
        "control": merge(control.values(), skipped=skipped[0]),
        "candidate": merge(candidate.values(), skipped=skipped[1]),
    }
    verdict = decisions.decide(arms["control"], arms["candidate"], **kw)
    if verdict.action not in ("advance", "promote"):
        return verdict
    for name, parts in (("control", control), ("candidate", candidate)):
        heaviest = sorted(parts.items(), key=lambda item: (-item[1].predictions, item[0]))[:MAX_HOLDOUTS]
        for device_id, part in heaviest:
            rest = {**arms, name: _combine(arms[name], part, -1)}
            held = decisions.decide(rest["control"], rest["candidate"], **kw)
            if held.action == "halt":
                note = (
                    f"without device {device_id} ({name}) the candidate is worse: one device cannot "
                    f"turn a halt into {verdict.action}"
                )
                numbers = {**held.numbers, "held_out": {"device_id": device_id, "arm": name}}
                return decisions.Verdict("halt", [*held.reasons, note], numbers)
    return verdict


__all__ = ["device_parts", "merge", "decide_robust", "common_edges"]
