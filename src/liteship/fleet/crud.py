"""Data access of the fleet server: keyword-only functions over the tables of :mod:`~liteship.fleet.models`.
The caller owns the transaction (one request = one transaction: a failure anywhere leaves nothing stored
half-way). Logic lives elsewhere: the rollout state machine in :mod:`~liteship.fleet.rollout`,
aggregation in :mod:`~liteship.fleet.aggregate`, package verification in :mod:`~liteship.fleet.registry`."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liteship.errors import Conflict, FleetError, NotFound, PackageError, VariantConflict
from liteship.fleet import variants
from liteship.fleet.bandwidth import per_device
from liteship.fleet.checkin import STABLE, Plan, hash_token, load_plan
from liteship.fleet.models import (
    ACTIVE_STATES,
    HOUR_BINS,
    HOUR_S,
    MAX_DB_ID,
    Assignment,
    Channel,
    DashboardSession,
    Decision,
    Device,
    HourSums,
    Model,
    Release,
    Revert,
    RevertMark,
    Rollout,
    RolloutState,
    TelemetryCreate,
    TelemetryHour,
    TelemetryVariantHour,
    TelemetryWindow,
)
from liteship.package import parse_semver

# ---- helpers ------------------------------------------------------------------------------------


def device_bucket(device_id: str) -> int:
    """Stable bucket 0..9999 of a device: sha256 of its id. A rollout at p % takes buckets < 100·p."""
    return int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") % 10_000


def semver_key(version: str) -> Any:
    """A sortable key for a semver string, from the package module's ``parse_semver``."""
    try:
        return parse_semver(version)
    except (ValueError, PackageError) as e:
        raise FleetError(f"version {version!r} is not a semantic version: {e}") from None


# ---- registry -----------------------------------------------------------------------------------


def latest_release(session: Session, *, model_id: str) -> Release | None:
    rows = session.scalars(select(Release).where(Release.model_id == model_id)).all()
    return max(rows, key=lambda r: semver_key(r.version), default=None)


def create_release(
    session: Session, *, manifest: dict[str, Any], sha256: str, size: int, channel: str | None
) -> Release:
    """Record a verified package. The first release of a model becomes its ``stable`` channel.

    A package with a ``variant`` (issue 24) creates its release when it is the default variant, and
    is added to the existing release of the same model and version otherwise (``fleet.variants``).

    Raises:
        FleetError: the manifest lacks a model id or version.
        Conflict: the version is not greater than the latest of that model; a variant that does not
            fit its release (see :func:`liteship.fleet.variants.add_variant`).
    """
    model_id = str(manifest.get("model_id") or manifest.get("id") or "")
    version = str(manifest.get("version") or "")
    if not model_id or not version:
        raise FleetError("the package manifest has no model_id or version.")
    key = semver_key(version)
    variant = variants.variant_of(manifest)
    if session.get(Model, model_id) is None:
        session.add(Model(id=model_id))
        session.flush()
    try:
        if variant is not None:
            existing = session.scalars(
                select(Release).where(Release.model_id == model_id, Release.version == version)
            ).first()
            if existing is not None:
                variants.add_variant(
                    session, release=existing, variant=variant, sha256=sha256, size=size, manifest=manifest
                )
                if channel:
                    set_channel(session, model_id=model_id, name=channel, release=existing)
                bump_plan(session, model_id=model_id)  # cached plans hold the release's variants
                return existing
        latest = latest_release(session, model_id=model_id)
        if latest is not None and key <= semver_key(latest.version):
            raise Conflict(
                f"{model_id} {version} is not newer than the latest published version {latest.version}.",
                hint="Bump the package version.",
            )
        release = variants.new_release_row(
            model_id=model_id, version=version, variant=variant, sha256=sha256, size=size, manifest=manifest
        )
        session.add(release)
        session.flush()
        if variant is not None:
            variants.add_variant(
                session, release=release, variant=variant, sha256=sha256, size=size, manifest=manifest
            )
    except VariantConflict as e:
        raise Conflict(e.message, hint=e.hint) from None
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
    taken = Conflict(f"device {device_id!r} is already registered.", hint="Use the token it was given.")
    if session.get(Device, device_id) is not None:
        raise taken
    token = secrets.token_urlsafe(32)
    device = Device(
        id=device_id, token_hash=hash_token(token), bucket=device_bucket(device_id), model_id=model_id
    )
    try:  # check, then insert: a registration racing in between loses on the primary key (409)
        with session.begin_nested():
            session.add(device)
    except IntegrityError:
        raise taken from None
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


def device_listing(session: Session, *, profile: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every device (those matching ``profile``, see :func:`profile_matches`) with what it runs, what
    it is assigned, its refused versions and its own revert count (server-requested ones excluded)."""
    plans: dict[str, Plan] = {}

    downloaded = per_device(session)
    out = []
    for d in list_devices(session):
        if profile and not profile_matches(d.runtime, profile):
            continue
        if d.model_id is not None and d.model_id not in plans:
            plans[d.model_id] = load_plan(session, model_id=d.model_id)
        plan = plans.get(d.model_id or "", Plan())
        a = plan.assign(
            device_id=d.id,
            model_id=d.model_id,
            bucket=d.bucket,
            current_version=d.model_version,
            profile=d.runtime,
            tags=d.tags,
            own_windows=d.update_windows,
        )
        failed = (d.health or {}).get("failed_versions")
        out.append(
            {
                "assigned_version": a.version,
                "assigned_variant": a.variant,
                "downloaded_bytes": downloaded.get(d.id, 0),
                "assignment_reason": a.reason,
                "failed_versions": [str(v) for v in failed] if isinstance(failed, list) else [],
                "last_checkin": _iso(d.last_seen),
                "reverts": d.own_reverts,  # the device decided them (server-requested ones are not its fault)
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


def reverts_for(
    session: Session, *, model_id: str, version: str, since: float, until: float | None = None
) -> list[RevertMark]:
    """Reverts away from ``version`` that devices decided themselves (not the server's rollbacks), at
    or after ``since`` (and before ``until``, when given).

    Two columns, not ORM rows: an arm may have tens of thousands (reading whole rows was most of the
    dashboard's time with 1M stored reverts, issue 21 item 9).
    """
    q = select(Revert.device_id, Revert.at).where(
        Revert.model_id == model_id,
        Revert.version == version,
        Revert.at >= since,
        Revert.by_server.is_(False),
    )
    if until is not None:
        q = q.where(Revert.at < until)
    return list(map(RevertMark._make, session.execute(q)))


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
        profile=device.runtime,
        tags=device.tags,
        own_windows=device.update_windows,
    )


# ---- telemetry ----------------------------------------------------------------------------------


def add_telemetry(
    session: Session, *, device: Device, window: TelemetryCreate, assigned: bool = True
) -> bool:
    """Store a window once. Returns True when the window id was already stored (nothing changes).

    ``window`` is already checked by its schema (bounds, finiteness, sorted edges, start ≤ end).
    ``assigned=False`` stores a window that is not counted by decisions or drift.
    """
    exists = session.scalar(
        select(func.count()).where(
            TelemetryWindow.device_id == device.id, TelemetryWindow.window_id == window.window_id
        )
    )
    if exists:
        return True
    row = TelemetryWindow(device_id=device.id, assigned=assigned, **window.model_dump())
    row.model_id = row.model_id or device.model_id
    row.model_version = row.model_version or device.model_version
    row.variant = device.variant  # the variant the device reported running at its last check-in
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
            if assigned and row.model_id is not None and row.model_version is not None:
                add_to_hour(
                    session,
                    row.model_id,
                    row.model_version,
                    row.ended,
                    list(window.confidence_hist),
                    variant=row.variant,
                )
    except IntegrityError:  # the same window raced in from a retry
        return True
    return False


def add_to_hour(
    session: Session, model_id: str, version: str, ended: float, hist: list[int], variant: str | None = None
) -> None:
    """Fold one counted window into its :class:`TelemetryHour` (created on first use), atomically, and,
    when it names the ``variant`` it ran on, into that variant's :class:`TelemetryVariantHour` too."""
    hour = (float(ended) // HOUR_S) * HOUR_S
    key: dict[str, Any] = {"model_id": model_id, "model_version": version, "hour": hour}
    _fold(session, TelemetryHour.__table__, key, hist)
    if variant is not None:
        _fold(session, TelemetryVariantHour.__table__, {**key, "variant": variant}, hist)


def _fold(session: Session, table: Any, key: dict[str, Any], hist: list[int]) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` the row of ``key``, then add one window and ``hist`` to it."""
    assert isinstance(table, Table)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(table).values(**key).on_conflict_do_nothing())
    added = {c: table.c[c] + int(n) for c, n in zip(HOUR_BINS, hist, strict=True)}
    session.execute(
        update(table)
        .where(*(table.c[k] == v for k, v in key.items()))
        .values(windows=table.c.windows + 1, **added)
    )


def hours_for(session: Session, *, model_id: str, version: str, since: float) -> list[HourSums]:
    """The hourly sums of one model version's counted windows that ended in an hour at or after ``since``
    (read as plain columns: no ORM rows)."""
    bins = [TelemetryHour.__table__.c[c] for c in HOUR_BINS]
    rows = session.execute(
        select(TelemetryHour.hour, TelemetryHour.windows, TelemetryHour.skipped, *bins).where(
            TelemetryHour.model_id == model_id,
            TelemetryHour.model_version == version,
            TelemetryHour.hour >= since,
        )
    )
    return [HourSums(r[0], r[1], r[2], list(r[3:])) for r in rows]


def variant_hours_for(
    session: Session, *, model_id: str, version: str, since: float
) -> list[tuple[str, HourSums]]:
    """``(variant, sums)`` of each hour at or after ``since`` of one model version's counted windows
    that named their variant (:class:`TelemetryVariantHour`)."""
    table = TelemetryVariantHour.__table__
    bins = [table.c[c] for c in HOUR_BINS]
    rows = session.execute(
        select(table.c.variant, table.c.hour, table.c.windows, *bins).where(
            table.c.model_id == model_id, table.c.model_version == version, table.c.hour >= since
        )
    )
    return [(r[0], HourSums(r[1], r[2], 0, list(r[3:]))) for r in rows]


def windows_for(
    session: Session, *, model_id: str, version: str, since: float, until: float | None = None
) -> list[TelemetryWindow]:
    """The counted windows (``assigned``) of one model version that ended at or after ``since`` (and
    before ``until``, when given)."""
    q = select(TelemetryWindow).where(
        TelemetryWindow.model_id == model_id,
        TelemetryWindow.model_version == version,
        TelemetryWindow.ended >= since,
        TelemetryWindow.assigned.is_(True),
    )
    if until is not None:
        q = q.where(TelemetryWindow.ended < until)
    return list(session.scalars(q))


def releases_of(session: Session, *, model_id: str) -> list[Release]:
    return list(session.scalars(select(Release).where(Release.model_id == model_id).order_by(Release.id)))


def get_model(session: Session, *, model_id: str) -> Model | None:
    return session.get(Model, model_id)


def devices_of_model(session: Session, *, model_id: str) -> list[Device]:
    return list(session.scalars(select(Device).where(Device.model_id == model_id).order_by(Device.id)))


def profile_matches(runtime: dict[str, Any] | None, profile: dict[str, str]) -> bool:
    """True when every ``key=value`` holds in a device profile: equal as text, or (for a list field
    such as ``isa`` or ``accelerators``) one of its items. Keys may be written ``profile.KEY``."""
    if not isinstance(runtime, dict):
        return not profile
    for key, want in profile.items():
        have = runtime.get(key.removeprefix("profile."))
        if isinstance(have, list):
            if want not in [str(v) for v in have]:
                return False
        elif have is None or str(have).lower() != want.lower():
            return False
    return True


def devices_matching(session: Session, *, profile: dict[str, str]) -> list[Device]:
    """The devices whose reported profile (check-in ``runtime``) matches every ``key=value``.

    >>> devices_matching(session, profile={"machine": "aarch64", "isa": "dotprod"})  # doctest: +SKIP
    """
    return [d for d in list_devices(session) if profile_matches(d.runtime, profile)]


# ---- rollouts -----------------------------------------------------------------------------------


def add_rollout(
    session: Session,
    *,
    model_id: str,
    control_release_id: int,
    candidate_release_id: int,
    stages: list[float],
    thresholds: dict[str, float],
    min_arm_devices: int = 0,
    bucket_cutoff: int | None = None,
) -> Rollout:
    now = time.time()
    rollout = Rollout(
        model_id=model_id,
        control_release_id=control_release_id,
        candidate_release_id=candidate_release_id,
        stages=stages,
        stage_index=0,
        state=RolloutState.RUNNING,
        thresholds=thresholds,
        created_at=now,
        stage_started_at=now,
        updated_at=now,
        min_arm_devices=min_arm_devices,
        bucket_cutoff=bucket_cutoff,
    )
    session.add(rollout)
    session.flush()
    return rollout


def get_rollout(session: Session, *, rollout_id: int) -> Rollout:
    """Raises: NotFound (also for ids beyond the integer key's range)."""
    rollout = session.get(Rollout, rollout_id) if 0 < rollout_id <= MAX_DB_ID else None
    if rollout is None:
        raise NotFound(
            f"no rollout {rollout_id}.", hint="List rollouts with `liteship fleet rollout status`."
        )
    return rollout


def claim_evaluation(session: Session, *, rollout_id: int, now: float, interval_s: float) -> bool:
    """Set the rollout's ``evaluated_at`` to ``now`` if its last evaluation is at least ``interval_s``
    old; True when this call did. One atomic UPDATE: SQLite runs one writer at a time and PostgreSQL
    re-checks the condition after a concurrent update of the row, so of concurrent callers exactly one
    claims it (a ``SELECT … FOR UPDATE`` is no lock on SQLite). Call it first in a transaction."""
    result = session.execute(
        update(Rollout)
        .where(
            Rollout.id == rollout_id,
            (Rollout.evaluated_at.is_(None)) | (Rollout.evaluated_at <= now - interval_s),
        )
        .values(evaluated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def lock_rollout(session: Session, *, rollout_id: int) -> Rollout | None:
    """The rollout re-read with ``SELECT … FOR UPDATE`` (serializes concurrent evaluations)."""
    return session.get(Rollout, rollout_id, with_for_update=True, populate_existing=True)


def list_rollouts(session: Session, *, model_id: str | None = None) -> list[Rollout]:
    q = select(Rollout).order_by(Rollout.id.desc())
    if model_id:
        q = q.where(Rollout.model_id == model_id)
    return list(session.scalars(q))


def decisions_of(session: Session, *, rollout_id: int) -> list[Decision]:
    return list(
        session.scalars(select(Decision).where(Decision.rollout_id == rollout_id).order_by(Decision.id))
    )


def last_decision(session: Session, *, rollout_id: int) -> Decision | None:
    return session.scalars(
        select(Decision).where(Decision.rollout_id == rollout_id).order_by(Decision.id.desc()).limit(1)
    ).first()


def add_decision(
    session: Session, *, rollout: Rollout, action: str, by: str, reasons: list[str], numbers: dict[str, Any]
) -> Decision:
    decision = Decision(
        rollout_id=rollout.id,
        at=time.time(),
        stage_index=rollout.stage_index,
        action=action,
        by=by,
        reasons=reasons,
        numbers=numbers,
    )
    session.add(decision)
    session.flush()
    return decision


# ---- dashboard sessions -------------------------------------------------------------------------


def add_dashboard_session(session: Session, *, lifetime_s: float) -> str:
    """A new dashboard session; returns its random cookie value (only its sha256 is stored)."""
    value = secrets.token_urlsafe(32)
    now = time.time()
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
    session.add(DashboardSession(token_hash=hash_token(value), created_at=now, expires_at=now + lifetime_s))
    session.flush()
    return value


def dashboard_session_valid(session: Session, *, value: str | None) -> bool:
    if not value or len(value) > 200:
        return False
    row = session.get(DashboardSession, hash_token(value))
    return row is not None and row.expires_at > time.time()


def end_dashboard_session(session: Session, *, value: str) -> None:
    session.execute(delete(DashboardSession).where(DashboardSession.token_hash == hash_token(value)))
