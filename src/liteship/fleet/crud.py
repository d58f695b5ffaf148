"""Database operations of the fleet server. Keyword-only functions; the caller owns the transaction
(one request = one transaction: a failure anywhere leaves nothing stored half-way)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liteship.errors import FleetError, PackageError
from liteship.fleet import decisions, drift
from liteship.fleet.checkin import ACTIVE_STATES, STABLE, Plan, hash_token, load_plan
from liteship.fleet.models import (
    CONFIDENCE_BINS,
    Assignment,
    Channel,
    Decision,
    Device,
    Model,
    Release,
    Revert,
    Rollout,
    TelemetryCreate,
    TelemetryWindow,
)


class NotFound(FleetError):
    """An id that does not exist (HTTP 404)."""


class Conflict(FleetError):
    """A request that contradicts the current state (HTTP 409)."""


# ---- helpers ------------------------------------------------------------------------------------


def device_bucket(device_id: str) -> int:
    """Stable bucket 0..9999 of a device: sha256 of its id. A rollout at p % takes buckets < 100·p."""
    return int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") % 10_000


def semver_key(version: str) -> Any:
    """A sortable key for a semver string, from the package module's ``parse_semver``."""
    from liteship.package import parse_semver  # lazy: the package stage is optional at import time

    try:
        return parse_semver(version)
    except (ValueError, PackageError) as e:
        raise FleetError(f"version {version!r} is not a semantic version: {e}") from None


def manifest_dict(manifest: Any) -> dict[str, Any]:
    if hasattr(manifest, "to_dict"):
        return dict(manifest.to_dict())
    if is_dataclass(manifest) and not isinstance(manifest, type):
        return asdict(manifest)
    return dict(manifest)


def reference_histogram(manifest: dict[str, Any]) -> tuple[list[float], list[float] | None] | None:
    """``(counts, edges)`` of the reference top-1 confidence histogram the package carries, or None."""
    hist = manifest.get("reference_histogram")
    if not isinstance(hist, dict) or not isinstance(hist.get("counts"), list) or not hist["counts"]:
        return None
    edges = hist.get("bins")
    return [float(c) for c in hist["counts"]], [float(e) for e in edges] if isinstance(edges, list) else None


NO_REFERENCE = (
    "no reference histogram in the package (build it with `liteship pipeline`, which records the "
    "validation confidence histogram)"
)


# ---- registry -----------------------------------------------------------------------------------


def verify_package_file(
    *,
    path: Path,
    trusted_keys: list[str],
    verify: Callable[[Path, Any], Any] | None = None,
    display_name: str | None = None,
) -> dict[str, Any]:
    """Verify a package with the first trusted key that accepts it; return its manifest as a dict.

    Args:
        path: the package on the server's disk (a temporary file while publishing).
        trusted_keys: publisher public keys.
        verify: replaces ``liteship.package.verify_package`` (tests).
        display_name: how messages name the package (the uploaded file's name), instead of ``path``.

    Raises:
        PackageError: unsigned, tampered, or signed by no trusted key (or none is configured).
    """
    if not trusted_keys:
        raise PackageError(
            "the server has no trusted publisher key (`trusted_keys`), so no package can be accepted.",
            hint="Restart it with the publisher's public key (LITESHIP_TRUSTED_KEYS).",
        )
    if verify is None:
        from liteship.package import verify_package

        verify = verify_package
    name = display_name or path.name
    errors = []
    for key in trusted_keys:
        try:
            return manifest_dict(verify(path, key))
        except (PackageError, ValueError) as e:
            errors.append(str(e).replace(str(path), name).replace(path.name, name))
    raise PackageError(f"package {name!r} refused: {errors[-1]}")


def latest_release(session: Session, *, model_id: str) -> Release | None:
    rows = session.scalars(select(Release).where(Release.model_id == model_id)).all()
    return max(rows, key=lambda r: semver_key(r.version), default=None)


def create_release(
    session: Session, *, manifest: dict[str, Any], sha256: str, size: int, channel: str | None
) -> Release:
    """Record a verified package. The first release of a model becomes its ``stable`` channel.

    Raises:
        FleetError: the manifest lacks a model id or version.
        Conflict: the version is not greater than the latest of that model.
    """
    model_id = str(manifest.get("model_id") or manifest.get("id") or "")
    version = str(manifest.get("version") or "")
    if not model_id or not version:
        raise FleetError("the package manifest has no model_id or version.")
    key = semver_key(version)
    if session.get(Model, model_id) is None:
        session.add(Model(id=model_id))
        session.flush()
    latest = latest_release(session, model_id=model_id)
    if latest is not None and key <= semver_key(latest.version):
        raise Conflict(
            f"{model_id} {version} is not newer than the latest published version {latest.version}.",
            hint="Bump the package version.",
        )
    name = f"{model_id}-{version}.lsp"
    release = Release(
        model_id=model_id,
        version=version,
        sha256=sha256,
        size=size,
        target_path=f"{model_id}/{version}/{name}",
        manifest=manifest,
    )
    session.add(release)
    session.flush()
    channels = {channel} if channel else set()
    if latest is None:
        channels.add(STABLE)
    for name in channels:
        set_channel(session, model_id=model_id, name=name, release=release)
    return release


def bump_plan(session: Session, *, model_id: str) -> None:
    """Mark the model's assignment plan as changed, in the caller's transaction (see ``checkin``)."""
    session.execute(
        update(Model).where(Model.id == model_id).values(plan_version=Model.plan_version + 1),
        execution_options={"synchronize_session": False},
    )


def set_channel(session: Session, *, model_id: str, name: str, release: Release) -> None:
    row = session.get(Channel, (model_id, name))
    if row is None:
        session.add(Channel(model_id=model_id, name=name, release_id=release.id))
    else:
        row.release_id, row.updated_at = release.id, time.time()
    bump_plan(session, model_id=model_id)


def channels_of(session: Session, *, model_id: str) -> dict[str, Release]:
    rows = session.execute(
        select(Channel.name, Release)
        .join(Release, Channel.release_id == Release.id)
        .where(Channel.model_id == model_id)
    ).all()
    return {name: rel for name, rel in rows}


def get_release(session: Session, *, model_id: str, version: str) -> Release:
    rel = session.scalars(
        select(Release).where(Release.model_id == model_id, Release.version == version)
    ).first()
    if rel is None:
        raise NotFound(
            f"no release {model_id} {version}.", hint="List releases with `liteship fleet models`."
        )
    return rel


def list_models(session: Session) -> list[tuple[Model, list[Release], dict[str, Release]]]:
    out = []
    for model in session.scalars(select(Model).order_by(Model.id)):
        rels = session.scalars(select(Release).where(Release.model_id == model.id).order_by(Release.id)).all()
        out.append((model, list(rels), channels_of(session, model_id=model.id)))
    return out


# ---- devices ------------------------------------------------------------------------------------


def register_device(session: Session, *, device_id: str, model_id: str | None) -> tuple[Device, str]:
    """Create a device and its token (returned once; only its hash is stored).

    Raises:
        Conflict: the device id is taken.
    """
    if session.get(Device, device_id) is not None:
        raise Conflict(f"device {device_id!r} is already registered.", hint="Use the token it was given.")
    token = secrets.token_urlsafe(32)
    device = Device(
        id=device_id, token_hash=hash_token(token), bucket=device_bucket(device_id), model_id=model_id
    )
    session.add(device)
    session.flush()
    return device, token


def device_by_token(session: Session, *, token: str) -> Device | None:
    return session.scalars(select(Device).where(Device.token_hash == hash_token(token))).first()


def list_devices(session: Session) -> list[Device]:
    return list(session.scalars(select(Device).order_by(Device.id)))


def get_device(session: Session, *, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}.", hint="List devices with `liteship fleet devices`.")
    return device


def device_listing(session: Session) -> list[dict[str, Any]]:
    """Every device with what it runs, what it is assigned, its refused versions and revert count."""
    plans: dict[str, Plan] = {}
    counts: dict[str, int] = {
        device_id: n
        for device_id, n in session.execute(
            select(Revert.device_id, func.count()).group_by(Revert.device_id)
        ).all()
    }
    out = []
    for d in list_devices(session):
        if d.model_id is not None and d.model_id not in plans:
            plans[d.model_id] = load_plan(session, model_id=d.model_id)
        plan = plans.get(d.model_id or "", Plan())
        a = plan.assign(device_id=d.id, model_id=d.model_id, bucket=d.bucket, current_version=d.model_version)
        failed = (d.health or {}).get("failed_versions")
        out.append(
            {
                "assigned_version": a.version,
                "assignment_reason": a.reason,
                "failed_versions": [str(v) for v in failed] if isinstance(failed, list) else [],
                "last_checkin": _iso(d.last_seen),
                "reverts": counts.get(d.id, 0),
                "device": d,
            }
        )
    return out


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def telemetry_of(
    session: Session, *, device_id: str, limit: int = 100, since: float = 0.0
) -> list[TelemetryWindow]:
    """A device's telemetry windows, newest first.

    Raises:
        NotFound: unknown device.
    """
    get_device(session, device_id=device_id)
    q = (
        select(TelemetryWindow)
        .where(TelemetryWindow.device_id == device_id, TelemetryWindow.ended >= since)
        .order_by(TelemetryWindow.ended.desc(), TelemetryWindow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(q))


def list_reverts(session: Session, *, device_id: str | None = None, limit: int = 100) -> list[Revert]:
    """Revert events, newest first (one device's when ``device_id`` is given).

    Raises:
        NotFound: unknown device.
    """
    q = select(Revert).order_by(Revert.at.desc(), Revert.id.desc()).limit(limit)
    if device_id is not None:
        get_device(session, device_id=device_id)
        q = q.where(Revert.device_id == device_id)
    return list(session.scalars(q))


def reverts_for(session: Session, *, model_id: str, version: str, since: float) -> list[Revert]:
    """Reverts away from ``version`` that devices decided themselves (not the server's rollbacks)."""
    return list(
        session.scalars(
            select(Revert).where(
                Revert.model_id == model_id,
                Revert.version == version,
                Revert.at >= since,
                Revert.by_server.is_(False),
            )
        )
    )


def active_rollout(session: Session, *, model_id: str) -> Rollout | None:
    return session.scalars(
        select(Rollout).where(Rollout.model_id == model_id, Rollout.state.in_(ACTIVE_STATES))
    ).first()


def assignment_for(session: Session, *, device: Device) -> Assignment:
    """The release a device should run: the rollout arm its bucket falls in, else the stable channel."""
    plan = Plan() if device.model_id is None else load_plan(session, model_id=device.model_id)
    return plan.assign(
        device_id=device.id,
        model_id=device.model_id,
        bucket=device.bucket,
        current_version=device.model_version,
    )


# ---- telemetry ----------------------------------------------------------------------------------


def add_telemetry(session: Session, *, device: Device, window: TelemetryCreate) -> bool:
    """Store a window once. Returns True when the window id was already stored (nothing changes).

    Raises:
        FleetError: inconsistent window (end before start, histogram/edges mismatch).
    """
    if window.ended < window.started:
        raise FleetError("telemetry window ends before it starts.")
    if window.latency_edges_ms and len(window.latency_hist) != len(window.latency_edges_ms) + 1:
        raise FleetError(
            f"latency_hist has {len(window.latency_hist)} bins; expected len(latency_edges_ms)+1 = "
            f"{len(window.latency_edges_ms) + 1}."
        )
    if any(c < 0 for c in window.confidence_hist + window.latency_hist):
        raise FleetError("histogram counts must not be negative.")
    exists = session.scalar(
        select(func.count()).where(
            TelemetryWindow.device_id == device.id, TelemetryWindow.window_id == window.window_id
        )
    )
    if exists:
        return True
    row = TelemetryWindow(device_id=device.id, **window.model_dump())
    row.model_id = row.model_id or device.model_id
    row.model_version = row.model_version or device.model_version
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # the same window raced in from a retry
        return True
    return False


def windows_for(session: Session, *, model_id: str, version: str, since: float) -> list[TelemetryWindow]:
    return list(
        session.scalars(
            select(TelemetryWindow).where(
                TelemetryWindow.model_id == model_id,
                TelemetryWindow.model_version == version,
                TelemetryWindow.ended >= since,
            )
        )
    )


def arm_stats(windows: list[TelemetryWindow], reverts: list[Revert] | None = None) -> decisions.ArmStats:
    """Merge windows and revert events into one :class:`decisions.ArmStats`.

    Latency merges the windows sharing the first latency edges. A device counts once towards the
    rollback rate whether it reported ``rollbacks`` in telemetry or a revert event in a check-in, and a
    device that reverted before sending any window still counts as a device of the arm.
    """
    reverts = reverts or []
    arm = decisions.ArmStats(confidence_hist=[0] * CONFIDENCE_BINS)
    devices = set()
    for w in windows:
        devices.add(w.device_id)
        arm.predictions += w.inferences
        arm.errors += w.errors
        arm.rollbacks += w.rollbacks
        arm.confidence_hist = [a + b for a, b in zip(arm.confidence_hist, w.confidence_hist, strict=True)]
        if w.latency_edges_ms and not arm.latency_edges_ms:
            arm.latency_edges_ms, arm.latency_hist = list(w.latency_edges_ms), [0] * len(w.latency_hist)
        if w.latency_edges_ms == arm.latency_edges_ms:
            arm.latency_hist = [a + b for a, b in zip(arm.latency_hist, w.latency_hist, strict=True)]
    reverted = {r.device_id for r in reverts}
    arm.devices = len(devices | reverted)
    arm.reverts = len(reverts)
    # rollbacks are counted per device: a device reporting several counts once for the rate
    arm.rollbacks = len({w.device_id for w in windows if w.rollbacks} | reverted)
    return arm


def drift_series(
    session: Session,
    *,
    model_id: str,
    version: str | None = None,
    period_s: float = 3600.0,
    since: float = 0.0,
) -> list[dict[str, Any]]:
    """Per version of a model: PSI per period of its live confidence vs the package's reference."""
    out = []
    releases = session.scalars(select(Release).where(Release.model_id == model_id).order_by(Release.id)).all()
    if not releases:
        raise NotFound(f"no model {model_id!r}.")
    for rel in releases:
        if version is not None and rel.version != version:
            continue
        ref = reference_histogram(rel.manifest)
        buckets: dict[float, list[int]] = {}
        windows = windows_for(session, model_id=model_id, version=rel.version, since=since)
        for w in windows:
            start = (w.ended // period_s) * period_s
            acc = buckets.setdefault(start, [0] * CONFIDENCE_BINS)
            buckets[start] = [a + b for a, b in zip(acc, w.confidence_hist, strict=True)]
        points = []
        if ref is not None:
            try:
                points = [drift.drift_point(s, h, *ref).to_dict() for s, h in sorted(buckets.items())]
            except ValueError:
                ref = None
        predictions = sum(sum(h) for h in buckets.values())
        if ref is None:
            level, note = "no-reference", NO_REFERENCE
        elif not windows:
            level, note = "insufficient", "no telemetry from this version yet"
        else:
            level, note = points[-1]["level"], None
        out.append(
            {
                "model_id": model_id,
                "version": rel.version,
                "has_reference": ref is not None,
                "points": points,
                "latest_level": level,
                "predictions": predictions,  # live predictions over every period
                "windows": len(windows),
                "note": note,
            }
        )
    return out


# ---- rollouts -----------------------------------------------------------------------------------


def create_rollout(
    session: Session,
    *,
    model_id: str,
    candidate_version: str,
    control_version: str | None,
    stages: list[float],
    thresholds: dict[str, float],
) -> Rollout:
    """Start a rollout of ``candidate_version`` beside the control (default: the stable channel).

    Raises:
        NotFound: unknown model or version. Conflict: another rollout of the model is active, or the
        candidate is the control. FleetError: stages not increasing within (0, 100] or ending below 100.
    """
    if (
        any(not 0 < s <= 100 for s in stages)
        or any(b <= a for a, b in zip(stages, stages[1:], strict=False))
        or stages[-1] != 100
    ):
        raise FleetError(f"stages must increase within (0, 100] and end at 100, got {stages}.")
    unknown = set(thresholds) - set(decisions.DEFAULT_THRESHOLDS)
    if unknown:
        raise FleetError(
            f"unknown thresholds {sorted(unknown)}; available: {sorted(decisions.DEFAULT_THRESHOLDS)}."
        )
    if session.get(Model, model_id) is None:
        raise NotFound(f"no model {model_id!r}.", hint="Publish a package first.")
    candidate = get_release(session, model_id=model_id, version=candidate_version)
    if control_version is None:
        control = channels_of(session, model_id=model_id).get(STABLE)
        if control is None:
            raise Conflict(f"{model_id} has no stable release to compare with.")
    else:
        control = get_release(session, model_id=model_id, version=control_version)
    if control.id == candidate.id:
        raise Conflict(f"the candidate {candidate_version} is already the control.")
    current = active_rollout(session, model_id=model_id)
    if current is not None:
        raise Conflict(
            f"rollout {current.id} of {model_id} is {current.state}.", hint="Promote or abort it first."
        )
    now = time.time()
    rollout = Rollout(
        model_id=model_id,
        control_release_id=control.id,
        candidate_release_id=candidate.id,
        stages=stages,
        stage_index=0,
        state="running",
        thresholds={**decisions.DEFAULT_THRESHOLDS, **thresholds},
        created_at=now,
        stage_started_at=now,
        updated_at=now,
    )
    session.add(rollout)
    session.flush()
    bump_plan(session, model_id=model_id)
    return rollout


def get_rollout(session: Session, *, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFound(
            f"no rollout {rollout_id}.", hint="List rollouts with `liteship fleet rollout status`."
        )
    return rollout


def list_rollouts(session: Session, *, model_id: str | None = None) -> list[Rollout]:
    q = select(Rollout).order_by(Rollout.id.desc())
    if model_id:
        q = q.where(Rollout.model_id == model_id)
    return list(session.scalars(q))


def decisions_of(session: Session, *, rollout_id: int) -> list[Decision]:
    return list(
        session.scalars(select(Decision).where(Decision.rollout_id == rollout_id).order_by(Decision.id))
    )


_TRANSITIONS = {
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
    "abort": ({"running", "paused"}, "aborted"),
    "promote": ({"running", "paused"}, "promoted"),
}


def change_rollout(
    session: Session,
    *,
    rollout: Rollout,
    action: str,
    by: str = "admin",
    reasons: list[str] | None = None,
    numbers: dict[str, Any] | None = None,
) -> Decision:
    """Apply ``pause | resume | abort | promote | halt | advance`` and record it as a decision.

    Raises:
        Conflict: the action does not apply to the rollout's state.
    """
    now = time.time()
    if action == "halt":
        allowed, new_state = {"running"}, "halted"
    elif action == "advance":
        allowed, new_state = {"running"}, "running"
    else:
        allowed, new_state = _TRANSITIONS[action]
    if rollout.state not in allowed:
        raise Conflict(f"cannot {action} rollout {rollout.id}: it is {rollout.state}.")
    if action == "advance":
        rollout.stage_index += 1
        rollout.stage_started_at = now
    if action == "promote":
        rollout.stage_index = len(rollout.stages) - 1
        candidate = session.get(Release, rollout.candidate_release_id)
        assert candidate is not None  # a foreign key of the rollout
        set_channel(session, model_id=rollout.model_id, name=STABLE, release=candidate)
    rollout.state, rollout.updated_at = new_state, now
    bump_plan(session, model_id=rollout.model_id)
    decision = Decision(
        rollout_id=rollout.id,
        at=now,
        stage_index=rollout.stage_index,
        action=action,
        by=by,
        reasons=reasons or [f"{action} by {by}"],
        numbers=numbers or {},
    )
    session.add(decision)
    session.flush()
    return decision


def evaluate_rollout(session: Session, *, rollout: Rollout, record_wait: bool = False) -> decisions.Verdict:
    """Run the decision engine on the current stage's telemetry and apply its verdict.

    ``wait`` verdicts are recorded only when ``record_wait`` (an explicit evaluation), so telemetry
    does not fill the table with them.
    """
    control = session.get(Release, rollout.control_release_id)
    candidate = session.get(Release, rollout.candidate_release_id)
    assert control is not None and candidate is not None
    since = rollout.stage_started_at
    # at 100 % no device runs the control any more: compare with the control over the whole rollout
    control_since = rollout.created_at if rollout.stages[rollout.stage_index] >= 100 else since
    model_id = rollout.model_id
    verdict = decisions.decide(
        arm_stats(
            windows_for(session, model_id=model_id, version=control.version, since=control_since),
            reverts_for(session, model_id=model_id, version=control.version, since=control_since),
        ),
        arm_stats(
            windows_for(session, model_id=model_id, version=candidate.version, since=since),
            reverts_for(session, model_id=model_id, version=candidate.version, since=since),
        ),
        stage_index=rollout.stage_index,
        n_stages=len(rollout.stages),
        thresholds=rollout.thresholds,
    )
    rollout.evaluated_at = time.time()
    if rollout.state != "running":
        return verdict
    if verdict.action == "wait":
        if record_wait:
            session.add(
                Decision(
                    rollout_id=rollout.id,
                    at=time.time(),
                    stage_index=rollout.stage_index,
                    action="wait",
                    by="engine",
                    reasons=verdict.reasons,
                    numbers=verdict.numbers,
                )
            )
        return verdict
    change_rollout(
        session,
        rollout=rollout,
        action=verdict.action,
        by="engine",
        reasons=verdict.reasons,
        numbers=verdict.numbers,
    )
    return verdict
