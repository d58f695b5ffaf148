"""Aggregation of stored telemetry: the two arms of a rollout, and drift per version and period.

Robust to any stored row: each window is checked again against :class:`~liteship.fleet.models.TelemetryCreate`
(rows stored before the bounds existed, or written by another tool, may be anything). A bad row is
skipped and counted (``skipped_windows``); one bad row never makes a page or a decision fail.

Drift reads the hourly sums (:class:`~liteship.fleet.models.TelemetryHour`, maintained as windows
arrive, checked once on the way in) for every whole hour, and the windows themselves only for the part
of an hour before ``since`` ends it: O(hours), not O(windows), and the same figures as the rescan
(``tests/integration/fleet/test_aggregates.py``). A period that is not a whole number of hours is
answered by the rescan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from liteship.errors import NotFound
from liteship.fleet import crud, decisions, drift, robust
from liteship.fleet.models import (
    CONFIDENCE_BINS,
    HOUR_S,
    Release,
    ReleaseVariant,
    Revert,
    RevertMark,
    Reverts,
    Rollout,
    TelemetryCreate,
    TelemetryWindow,
)
from liteship.fleet.variants import variants_of

NO_REFERENCE = (
    "no reference histogram in the package (build it with `liteship pipeline`, or `liteship package "
    "--reference-data`, which record the validation confidence histogram)"
)
_CHECKED = tuple(f for f in TelemetryCreate.model_fields if f not in ("window_id",))


def window_problem(w: TelemetryWindow) -> str | None:
    """Why a stored window cannot be aggregated (None: it can)."""
    try:
        TelemetryCreate.model_validate({"window_id": "stored", **{f: getattr(w, f) for f in _CHECKED}})
    except ValidationError as e:
        first = e.errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"
    except (TypeError, ValueError, OverflowError) as e:  # not even the right Python types
        return str(e)
    return None


# Stored windows are never updated, so each row is checked once per process, not on every load (issue
# 21 item 9): row key → passed. Bounded; a row read after the cache was cleared is simply checked again.
_CHECKED_ROWS: dict[tuple[int, str, str], bool] = {}
MAX_CHECKED_ROWS = 2_000_000


def _passes(w: TelemetryWindow) -> bool:
    if w.id is None:  # not a stored row (built in memory): always checked
        return window_problem(w) is None
    key = (w.id, w.device_id, w.window_id)
    ok = _CHECKED_ROWS.get(key)
    if ok is None:
        if len(_CHECKED_ROWS) >= MAX_CHECKED_ROWS:
            _CHECKED_ROWS.clear()
        ok = _CHECKED_ROWS[key] = window_problem(w) is None
    return ok


def good_windows(windows: list[TelemetryWindow]) -> tuple[list[TelemetryWindow], int]:
    """The windows that pass :func:`window_problem` (once per stored row), and how many did not."""
    good = [w for w in windows if _passes(w)]
    return good, len(windows) - len(good)


def arm_stats(windows: list[TelemetryWindow], reverts: Reverts | None = None) -> decisions.ArmStats:
    """Merge windows and revert events into one :class:`decisions.ArmStats` (bad rows skipped, counted).

    Each device carries one device's weight and latency is merged on the arm's common edges
    (:mod:`liteship.fleet.robust`). A device counts once towards the rollback rate whether it reported
    ``rollbacks`` in telemetry or a revert event in a check-in, and a device that reverted before
    sending any window still counts as a device of the arm.
    """
    good, skipped = good_windows(windows)
    return robust.merge(robust.device_parts(good, reverts).values(), skipped=skipped)


def arm_parts(
    windows: list[TelemetryWindow], reverts: Reverts | None = None
) -> tuple[dict[str, decisions.ArmStats], int]:
    """The arm as device parts (:func:`liteship.fleet.robust.device_parts`) and its skipped windows."""
    good, skipped = good_windows(windows)
    return robust.device_parts(good, reverts), skipped


def paired_windows(
    control: list[TelemetryWindow], candidate: list[TelemetryWindow], *, period_s: float
) -> tuple[list[TelemetryWindow], list[TelemetryWindow], int]:
    """Both arms' good windows in the periods in which both reported: ``(control, candidate, periods)``.

    Windows are grouped by the period of their end; a period in which only one arm reported is left
    out, so both latency histograms cover the same moments (a machine that is busy in one period
    slows both sides of the comparison, and at 100 % the candidate is not compared with the control's
    figures from another time of day).
    """
    control, _ = good_windows(control)
    candidate, _ = good_windows(candidate)

    def period(w: TelemetryWindow) -> float:
        return (w.ended // period_s) * period_s

    shared = {period(w) for w in control} & {period(w) for w in candidate}
    return (
        [w for w in control if period(w) in shared],
        [w for w in candidate if period(w) in shared],
        len(shared),
    )


def paired_latency(
    control: list[TelemetryWindow], candidate: list[TelemetryWindow], *, period_s: float
) -> tuple[decisions.ArmStats, decisions.ArmStats, int]:
    """Both arms merged over :func:`paired_windows`: ``(control, candidate, periods)``."""
    ctrl, cand, periods = paired_windows(control, candidate, period_s=period_s)
    return arm_stats(ctrl), arm_stats(cand), periods


@dataclass(frozen=True)
class TimelinePoint:
    """One period of one arm: its merged windows (by end time) and the reverts reported in it."""

    start: float
    predictions: int
    devices: int
    error_rate: float | None
    latency_p95_ms: float | None
    reverts: int


def arm_timeline(windows: list[TelemetryWindow], reverts: Reverts, *, period_s: float) -> list[TimelinePoint]:
    """Per period (windows by their end, reverts by their time): predictions, error rate, latency p95."""
    good, _ = good_windows(windows)
    by_period: dict[float, tuple[list[TelemetryWindow], list[Revert | RevertMark]]] = {}
    for w in good:
        by_period.setdefault((w.ended // period_s) * period_s, ([], []))[0].append(w)
    for r in reverts:
        by_period.setdefault((r.at // period_s) * period_s, ([], []))[1].append(r)
    out = []
    for start, (ws, rs) in sorted(by_period.items()):
        arm = arm_stats(ws, rs)
        total = arm.predictions + arm.errors
        out.append(
            TimelinePoint(
                start=start,
                predictions=arm.predictions,
                devices=arm.devices,
                error_rate=arm.error_rate if total else None,
                latency_p95_ms=decisions.histogram_quantile(arm.latency_hist, arm.latency_edges_ms, 0.95),
                reverts=len(rs),
            )
        )
    return out


def reference_histogram(manifest: dict[str, Any]) -> tuple[list[float], list[float] | None] | None:
    """``(counts, edges)`` of the reference top-1 confidence histogram the package carries, or None.

    None also when it is malformed (non-finite or negative counts, edges of the wrong length).
    """
    hist = manifest.get("reference_histogram") if isinstance(manifest, dict) else None
    if not isinstance(hist, dict) or not isinstance(hist.get("counts"), list) or not hist["counts"]:
        return None
    edges = hist.get("bins")
    try:
        counts = [float(c) for c in hist["counts"]]
        bins = [float(e) for e in edges] if isinstance(edges, list) else None
    except (TypeError, ValueError, OverflowError):
        return None
    if not all(math.isfinite(c) and c >= 0 for c in counts) or len(counts) > 1000:
        return None
    if bins is not None and (len(bins) != len(counts) + 1 or not all(math.isfinite(b) for b in bins)):
        return None
    return counts, bins


def _confidence_by_period(windows: list[TelemetryWindow], period_s: float) -> dict[float, list[int]]:
    buckets: dict[float, list[int]] = {}
    for w in windows:
        start = (w.ended // period_s) * period_s
        acc = buckets.setdefault(start, [0] * CONFIDENCE_BINS)
        buckets[start] = [a + b for a, b in zip(acc, w.confidence_hist, strict=True)]
    return buckets


@dataclass(frozen=True)
class Confidence:
    """A version's live confidence per period: ``{period start: counts}``, windows used and skipped."""

    by_period: dict[float, list[int]]
    windows: int
    skipped: int


def confidence_series(
    session: Session, *, model_id: str, version: str, period_s: float, since: float, rescan: bool = False
) -> Confidence:
    """The counted windows' confidence per period (by their end) since ``since``.

    From the hourly sums when ``period_s`` is a whole number of hours (the windows of the hour
    ``since`` falls in are read themselves); else, or with ``rescan``, from every window.
    """
    whole = period_s % HOUR_S == 0
    first_hour = math.ceil(since / HOUR_S) * HOUR_S if whole else math.inf
    if rescan or not whole or not math.isfinite(first_hour):
        windows, skipped = good_windows(
            crud.windows_for(session, model_id=model_id, version=version, since=since)
        )
        return Confidence(_confidence_by_period(windows, period_s), len(windows), skipped)
    by_period: dict[float, list[int]] = {}
    n = skipped = 0
    if first_hour > since:
        part = crud.windows_for(session, model_id=model_id, version=version, since=since, until=first_hour)
        windows, skipped = good_windows(part)
        by_period, n = _confidence_by_period(windows, period_s), len(windows)
    for row in crud.hours_for(session, model_id=model_id, version=version, since=first_hour):
        start = (row.hour // period_s) * period_s
        _add(by_period, start, row.confidence_hist)
        n += row.windows
        skipped += row.skipped
    return Confidence(by_period, n, skipped)


def variant_confidence(
    session: Session, *, model_id: str, version: str, period_s: float, since: float, rescan: bool = False
) -> dict[str, Confidence]:
    """:func:`confidence_series` per variant: ``{variant: its counted windows' confidence per period}``.

    Only windows that name the variant they ran on count (agents that report no variant count in the
    release's figure alone). From :class:`~liteship.fleet.models.TelemetryVariantHour` for whole hours,
    exactly as :func:`confidence_series` reads :class:`~liteship.fleet.models.TelemetryHour`.
    """
    whole = period_s % HOUR_S == 0
    first_hour = math.ceil(since / HOUR_S) * HOUR_S if whole else math.inf
    out: dict[str, Confidence] = {}

    def from_windows(rows: list[TelemetryWindow]) -> None:
        good, _ = good_windows([w for w in rows if w.variant is not None])
        by_variant: dict[str, list[TelemetryWindow]] = {}
        for w in good:
            by_variant.setdefault(str(w.variant), []).append(w)
        for name, ws in by_variant.items():
            out[name] = Confidence(_confidence_by_period(ws, period_s), len(ws), 0)

    if rescan or not whole or not math.isfinite(first_hour):
        from_windows(crud.windows_for(session, model_id=model_id, version=version, since=since))
        return out
    if first_hour > since:
        from_windows(
            crud.windows_for(session, model_id=model_id, version=version, since=since, until=first_hour)
        )
    for name, row in crud.variant_hours_for(session, model_id=model_id, version=version, since=first_hour):
        seen = out.get(name) or Confidence({}, 0, 0)
        _add(seen.by_period, (row.hour // period_s) * period_s, row.confidence_hist)
        out[name] = Confidence(seen.by_period, seen.windows + row.windows, 0)
    return out


def _variant_drift(
    session: Session,
    rel: Release,
    rows: list[ReleaseVariant],
    release_ref: tuple[list[float], list[float] | None] | None,
    *,
    period_s: float,
    since: float,
    rescan: bool,
) -> tuple[list[dict[str, Any]], int]:
    """Drift of each variant of a multi-variant release against its own reference histogram (its
    package's, else the release's): one entry per variant, default first; and the counted windows that
    named a variant the release does not have (left out of the breakdown). ``[]`` without variants."""
    if not rows:
        return [], 0
    live = variant_confidence(
        session, model_id=rel.model_id, version=rel.version, period_s=period_s, since=since, rescan=rescan
    )
    out = []
    for row in rows:
        own = reference_histogram(row.manifest)
        ref, source = (own, "variant") if own is not None else (release_ref, "release")
        series = live.get(row.name, Confidence({}, 0, 0))
        points: list[dict[str, Any]] = []
        if ref is not None:
            try:
                points = [
                    drift.drift_point(t, h, *ref).to_dict() for t, h in sorted(series.by_period.items())
                ]
            except ValueError:
                ref = None
        if ref is None:
            level, note, source_or_none = "no-reference", NO_REFERENCE, None
        elif not series.windows:
            level, note, source_or_none = "insufficient", "no telemetry from this variant yet", source
        else:
            level, note, source_or_none = points[-1]["level"], None, source
        out.append(
            {
                "variant": row.name,
                "default": bool(row.is_default),
                "reference": source_or_none,  # "variant": its own package's; "release": the release's
                "has_reference": ref is not None,
                "points": points,
                "latest_level": level,
                "predictions": sum(sum(h) for h in series.by_period.values()),
                "windows": series.windows,
                "note": note,
            }
        )
    names = {row.name for row in rows}
    other = sum(c.windows for name, c in live.items() if name not in names)
    return out, other


def _add(buckets: dict[float, list[int]], start: float, counts: Iterable[int]) -> None:
    acc = buckets.setdefault(start, [0] * CONFIDENCE_BINS)
    buckets[start] = [a + b for a, b in zip(acc, counts, strict=True)]


def _versus_control(
    session: Session, *, model_id: str, version: str, period_s: float, since: float, rescan: bool = False
) -> dict[str, Any] | None:
    """The candidate of the model's latest rollout against its control's live confidence, period by
    period (the periods both arms reported in since the rollout started): a release whose own validation
    histogram was wrong, or that is as bad as its validation data, still shows against the field."""
    rollout = next(iter(crud.list_rollouts(session, model_id=model_id)), None)
    if rollout is None:
        return None
    candidate = session.get(Release, rollout.candidate_release_id)
    control = session.get(Release, rollout.control_release_id)
    if candidate is None or control is None or candidate.version != version:
        return None
    start = max(since, rollout.created_at)

    def live(v: str) -> dict[float, list[int]]:
        series = confidence_series(
            session, model_id=model_id, version=v, period_s=period_s, since=start, rescan=rescan
        )
        return series.by_period

    mine, theirs = live(version), live(control.version)
    points = [
        drift.drift_point(t, mine[t], [float(c) for c in theirs[t]]).to_dict()
        for t in sorted(set(mine) & set(theirs))
        if sum(theirs[t])
    ]
    return {"rollout_id": rollout.id, "control_version": control.version, "points": points}


LEVELS = ("insufficient", "ok", "warn", "alert")


def drift_series(
    session: Session,
    *,
    model_id: str,
    version: str | None = None,
    period_s: float = 3600.0,
    since: float = 0.0,
    rescan: bool = False,
) -> list[dict[str, Any]]:
    """Per version of a model: PSI per period of its live confidence vs the package's reference, and,
    for a release with variants, the same per variant against each variant's own reference (``variants``).

    Only windows the server counted (``assigned``) and that pass :func:`window_problem` are used; the
    others are counted in ``skipped_windows``.

    Raises:
        NotFound: unknown model.
    """
    out = []
    releases = crud.releases_of(session, model_id=model_id)
    if not releases:
        raise NotFound(f"no model {model_id!r}.", hint="List models with `liteship fleet models`.")
    rows_of = variants_of(session, [r.id for r in releases if version is None or r.version == version])
    for rel in releases:
        if version is not None and rel.version != version:
            continue
        ref = reference_histogram(rel.manifest)
        series = confidence_series(
            session, model_id=model_id, version=rel.version, period_s=period_s, since=since, rescan=rescan
        )
        buckets, skipped = series.by_period, series.skipped
        points = []
        if ref is not None:
            try:
                points = [drift.drift_point(s, h, *ref).to_dict() for s, h in sorted(buckets.items())]
            except ValueError:
                ref = None
        predictions = sum(sum(h) for h in buckets.values())
        if ref is None:
            level, note = "no-reference", NO_REFERENCE
        elif not series.windows:
            level, note = "insufficient", "no telemetry from this version yet"
        else:
            level, note = points[-1]["level"], None
        versus = _versus_control(
            session, model_id=model_id, version=rel.version, period_s=period_s, since=since, rescan=rescan
        )
        judged = [p for p in (versus or {}).get("points", []) if p["level"] != "insufficient"]
        if versus and judged:  # the field's verdict beside the package's own reference; the worse one shows
            if LEVELS.index(judged[-1]["level"]) > LEVELS.index(level if level in LEVELS else "ok"):
                level = judged[-1]["level"]
            note = (
                f"PSI {judged[-1]['psi']:.3f} against the live confidence of the control "
                f"{versus['control_version']} (rollout {versus['rollout_id']})"
            )
        per_variant, other = _variant_drift(
            session, rel, rows_of.get(rel.id, []), ref, period_s=period_s, since=since, rescan=rescan
        )
        judged_variants = [v["latest_level"] for v in per_variant if v["latest_level"] in LEVELS[1:]]
        out.append(
            {
                "model_id": model_id,
                "version": rel.version,
                "has_reference": ref is not None,
                "points": points,
                "latest_level": level,
                "predictions": predictions,  # live predictions over every period
                "windows": series.windows,
                "skipped_windows": skipped,
                "note": note,
                "versus_control": versus,  # None: not the candidate of the model's latest rollout
                # a multi-variant release: each variant against its own reference (issue 24); [] else
                "variants": per_variant,
                "worst_variant_level": max(judged_variants, key=LEVELS.index) if judged_variants else None,
                "other_variant_windows": other,  # counted windows naming a variant the release lacks
            }
        )
    return out


# an arm's device parts and its skipped windows (fleet/rollout.py and fleet/groups.py decide on them)
Parts = tuple[dict[str, decisions.ArmStats], int]


def parts_now(session: Session, *, rollout: Rollout) -> tuple[Parts, Parts]:
    """``(control, candidate)`` over the current stage as device parts and skipped windows."""
    control = session.get(Release, rollout.control_release_id)
    candidate = session.get(Release, rollout.candidate_release_id)
    assert control is not None and candidate is not None
    since = rollout.stage_started_at
    # at 100 % no device runs the control any more: compare with the control over the whole rollout
    control_since = rollout.created_at if rollout.stages[rollout.stage_index] >= 100 else since
    model_id = rollout.model_id
    ctrl_windows = crud.windows_for(session, model_id=model_id, version=control.version, since=control_since)
    cand_windows = crud.windows_for(session, model_id=model_id, version=candidate.version, since=since)
    arms = (
        arm_parts(
            ctrl_windows,
            crud.reverts_for(session, model_id=model_id, version=control.version, since=control_since),
        ),
        arm_parts(
            cand_windows,
            crud.reverts_for(session, model_id=model_id, version=candidate.version, since=since),
        ),
    )
    # latency on paired figures: the periods of the rollout in which both arms reported (issue 22)
    period = float(
        rollout.thresholds.get("latency_pair_period_s", decisions.DEFAULT_THRESHOLDS["latency_pair_period_s"])
    )
    if control_since != since:  # at 100 %: the candidate's windows of the earlier stages pair too
        cand_windows = crud.windows_for(
            session, model_id=model_id, version=candidate.version, since=control_since
        )
    _pair_latency(arms[0][0], arms[1][0], ctrl_windows, cand_windows, period)
    return arms


def _pair_latency(
    control: dict[str, decisions.ArmStats],
    candidate: dict[str, decisions.ArmStats],
    ctrl_windows: list[Any],
    cand_windows: list[Any],
    period_s: float,
) -> None:
    """Give every device part of both arms the latency of its windows in the periods both arms reported
    in only (a part with none there has an empty latency histogram)."""
    pair = paired_windows(ctrl_windows, cand_windows, period_s=period_s)
    for parts, windows in zip((control, candidate), pair[:2], strict=True):
        paired = robust.device_parts(windows, None)
        for device, part in parts.items():
            latency = paired.get(device)
            part.latency_hist = list(latency.latency_hist) if latency else []
            part.latency_edges_ms = list(latency.latency_edges_ms) if latency else []
