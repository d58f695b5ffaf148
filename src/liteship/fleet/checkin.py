"""The check-in hot path: what every device calls every poll interval, so the busiest endpoint.

A check-in is one statement in one short transaction, which writes the device and reads its model's
plan version:

    UPDATE devices SET <reported fields>, last_seen = now WHERE id = ?
    RETURNING model_id, model_version, runtime, tags, update_windows,
              (SELECT plan_version FROM models WHERE models.id = devices.model_id)

(plus, only when the device reports revert events in its ``health``, one
``INSERT INTO reverts … ON CONFLICT DO NOTHING``: see :func:`revert_events`).

Everything else comes from two in-process caches (one per API worker):

- **tokens** — ``sha256(token) → (device id, bucket)``. Tokens are random 256-bit values, so one fast
  hash is the right verifier (a slow KDF protects guessable passwords; nobody can enumerate 2^256
  tokens). The mapping never changes: the server neither reissues nor revokes a token nor deletes a
  device, so a cached entry cannot go stale. A future revocation must evict it here and, with several
  workers, check a revocation counter in the database the way plans do.
- **plans** — ``model id → (plan_version, Plan)``: the active rollout with its two releases and the
  ``stable`` release, i.e. everything an assignment depends on besides the device's bucket. Every change
  to a plan (``crud.create_rollout``, ``crud.change_rollout``, ``crud.set_channel``) bumps
  ``models.plan_version`` in the same transaction. A worker trusts its cached plan only while the
  version it reads in the check-in's own transaction equals the cached one, so with any number of
  workers on one database a check-in sees a plan exactly as fresh as reading the rollout itself would
  give: no TTL, no window of staleness. The version is read before the plan is loaded, so a change
  committed in between leaves an older version on newer data and only causes one extra reload.

On SQLite the check-in runs on the event loop's thread, on an engine without busy timeout: when another
connection holds the write lock it fails at once, nothing written, and runs again on the single writer
thread (which waits for the lock); WAL checkpoints (fsyncs) run on that thread too. The statement is
run on the DBAPI cursor, compiled once (:class:`_RawUpdate`).

On PostgreSQL the common check-in runs on the event loop too, on a small pool of psycopg async
connections in autocommit mode (:mod:`liteship.fleet.pg_checkin`): the same statement with two more
conditions (the device is enrolled for the model it claims, and that model's plan version is the cached
plan's), so it writes either the whole check-in or nothing; anything else (no row written, events to
store, a database error, no connection) runs the full check-in below in the thread pool.

The assignment itself is memoized per plan (:meth:`Plan.assign`): it depends on the device only
through its arm, version, profile, tags and own windows, so the variant choice, the rollout's tags and
the windows of a tag set are decided once per combination, not at every check-in.

Device state is written on every check-in (no coalescing of ``last_seen``): real devices check in once
per poll interval (minutes), so skipping "unchanged" writes would almost never apply in a real fleet
and would only flatter a benchmark.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Engine, Table, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from liteship.errors import LiteshipError
from liteship.fleet.models import (
    MAX_TIME,
    Assignment,
    Channel,
    CheckIn,
    CohortPin,
    CohortWindows,
    Device,
    Download,
    Model,
    Release,
    Revert,
    Rollout,
    RolloutState,
)
from liteship.fleet.pg_checkin import AsyncPool
from liteship.fleet.variants import VariantRef, pick, refs, variants_of
from liteship.package import parse_semver

log = logging.getLogger(__name__)

MAX_EVENTS = 100  # revert events read from one check-in
STABLE = "stable"


def carries_all(device_tags: Iterable[str] | None, wanted: Iterable[str]) -> bool:
    """True when a device's tags include every one of ``wanted`` (no tags wanted: every device).

    The one rule of tag targeting: rollouts (``Rollout.tags``) and device jobs (``BenchJobCreate.tags``).
    """
    return set(wanted) <= set(device_tags or ())


def hash_token(token: str) -> str:
    """The stored verifier of a device token: sha256 (see the module docstring for why not a KDF)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a device token belongs to; immutable for the life of the device."""

    id: str
    bucket: int


@dataclass(frozen=True)
class ReleaseRef:
    version: str
    target_path: str
    sha256: str
    size: int
    variants: tuple[VariantRef, ...] = ()  # a multi-variant release (issue 24): one per kind of hardware

    @classmethod
    def of(cls, rel: Release, session: Session | None = None) -> ReleaseRef:
        """The release's target; with ``session``, its variants too."""
        rows = variants_of(session, [rel.id]).get(rel.id, []) if session is not None else []
        return cls(rel.version, rel.target_path, rel.sha256, rel.size, refs(rows))

    def for_profile(self, profile: dict[str, Any] | None) -> tuple[str, str, int, str | None]:
        """``(target_path, sha256, size, variant name)`` of the package a device with ``profile`` runs."""
        chosen = pick(self.variants, profile)
        if chosen is None:
            return self.target_path, self.sha256, self.size, None
        return chosen.target_path, chosen.sha256, chosen.size, chosen.name


@dataclass(frozen=True)
class Plan:
    """What the devices of one model should run: the active rollout's arms, else the stable release."""

    stable: ReleaseRef | None = None
    rollout_id: int | None = None
    rollout_state: str = ""
    percent: float = 0.0
    cutoff: int = 0  # devices with buckets below it run the candidate
    control: ReleaseRef | None = None
    candidate: ReleaseRef | None = None
    # the last rollout of the model, when it was halted or aborted and stable is older than its candidate
    rolled_back_id: int | None = None
    rolled_back_state: str = ""
    rolled_back_version: str | None = None
    # per-group rollouts (issue 24): hardware groups (the candidate's variants) halted in the active
    # rollout; and, after a rollout promoted with halted groups, those groups held on its control
    halted_groups: frozenset[str] = frozenset()
    held_groups: frozenset[str] = frozenset()
    held: ReleaseRef | None = None
    held_rollout_id: int | None = None
    # cohorts (issue 24): the rollout takes only devices with all these tags; a tag pinned to a release;
    # the update windows of devices carrying a tag (every model's plan holds them)
    rollout_tags: frozenset[str] = frozenset()
    pins: tuple[tuple[str, ReleaseRef], ...] = ()
    tag_windows: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # assignments already decided on this plan, by everything they depend on but the device's id (a
    # fleet has few distinct profiles, tag sets and versions; bounded by MEMO_SIZE)
    _memo: dict[tuple[Any, ...], Assignment] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", {})

    def windows_for(self, tags: list[str] | None, own: list[str] | None) -> list[str] | None:
        """The device's update windows: its own plus those of its tags (None: updates at any time)."""
        have = set(tags or ())
        found = list(own or ()) + [w for tag, ws in self.tag_windows if tag in have for w in ws]
        return sorted(set(found)) or None

    def group_of(self, profile: dict[str, Any] | None) -> str | None:
        """The device's hardware group in the rollout: the candidate's variant for its profile (None
        when the candidate has no variants: the fleet is one group)."""
        chosen = pick(self.candidate.variants, profile) if self.candidate is not None else None
        return chosen.name if chosen is not None else None

    def _back_to_control(
        self, base: dict[str, Any], control: ReleaseRef, left: ReleaseRef, current: str | None, reason: str
    ) -> Assignment:
        """A device of a halted (or held) group: the control; one running the candidate it leaves gets
        ``rollback-to-control`` with the one downgrade it may make."""
        if current is not None and current == left.version and _older(control.version, left.version):
            return _assignment(
                base,
                control,
                reason,
                rollout_id=self.rollout_id or self.held_rollout_id,
                arm="control",
                reason_code="rollback-to-control",
                allow_downgrade_to=control.version,
            )
        code = "rollout-control" if self.rollout_id is not None else "group-held"
        return _assignment(
            base,
            control,
            reason,
            rollout_id=self.rollout_id or self.held_rollout_id,
            arm="control",
            reason_code=code,
        )

    def assign(
        self,
        *,
        device_id: str,
        model_id: str | None,
        bucket: int,
        current_version: str | None = None,
        profile: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        own_windows: list[str] | None = None,
    ) -> Assignment:
        """See :meth:`_assign`; adds the device's update windows (its own and its tags').

        The answer depends on the device only through its model, which arm its bucket falls in, its
        current version, profile, tags and own windows: it is computed once per plan for each such
        combination and copied with the device's id (the variant choice, the rollout's tags and the
        windows of a tag set are not decided again at every check-in).
        """
        key = _memo_key(model_id, bucket < self.cutoff, current_version, profile, tags, own_windows)
        if key is not None:
            found = self._memo.get(key)
            if found is not None:
                return found.model_copy(update={"device_id": device_id})
        a = self._decide(
            device_id=device_id,
            model_id=model_id,
            bucket=bucket,
            current_version=current_version,
            profile=profile,
            tags=tags,
            own_windows=own_windows,
        )
        if key is not None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = a
            return a.model_copy()  # the memo keeps its own copy
        return a

    def _decide(
        self,
        *,
        device_id: str,
        model_id: str | None,
        bucket: int,
        current_version: str | None,
        profile: dict[str, Any] | None,
        tags: list[str] | None,
        own_windows: list[str] | None,
    ) -> Assignment:
        a = self._assign(
            device_id=device_id,
            model_id=model_id,
            bucket=bucket,
            current_version=current_version,
            profile=profile,
            tags=tags,
        )
        if a.version is not None and (own_windows or (tags and self.tag_windows)):
            a.update_windows = self.windows_for(tags, own_windows)
        return a

    def _assign(
        self,
        *,
        device_id: str,
        model_id: str | None,
        bucket: int,
        current_version: str | None,
        profile: dict[str, Any] | None,
        tags: list[str] | None,
    ) -> Assignment:
        """The assignment of a device: the rollout arm its bucket falls in, else the stable channel;
        of a multi-variant release, the variant its ``profile`` selects (issue 24).

        A device still running the candidate of a halted or aborted rollout (``current_version``) is
        sent back to stable with ``reason_code="rollback-to-control"`` and ``allow_downgrade_to``.
        """
        base: dict[str, Any] = {"device_id": device_id, "model_id": model_id, "profile": profile}
        if model_id is None:
            return _unassigned(device_id, model_id, "no model chosen", reason_code="no-model")
        have = set(tags or ())
        for tag, pinned in self.pins:
            if tag in have:
                return _assignment(
                    base, pinned, f"cohort {tag} is pinned to {pinned.version}", reason_code="pinned"
                )
        if self.rollout_id is not None and not carries_all(have, self.rollout_tags):
            assert self.control is not None
            reason = f"rollout {self.rollout_id} is for devices tagged {', '.join(sorted(self.rollout_tags))}"
            return _assignment(base, self.control, reason, reason_code="not-in-rollout")
        if self.rollout_id is not None:
            group = self.group_of(profile)
            if group is not None:
                base["group"] = group
            if group is not None and group in self.halted_groups:
                assert self.control is not None and self.candidate is not None
                reason = f"rollout {self.rollout_id}: group {group} halted, back on the control"
                return self._back_to_control(base, self.control, self.candidate, current_version, reason)
            arm = "candidate" if bucket < self.cutoff else "control"
            rel = self.candidate if arm == "candidate" else self.control
            reason = f"rollout {self.rollout_id} ({self.rollout_state}) at {self.percent:g} %: {arm}"
            return _assignment(
                base, rel, reason, rollout_id=self.rollout_id, arm=arm, reason_code=f"rollout-{arm}"
            )
        if self.stable is None:
            return _unassigned(device_id, model_id, "model has no stable release", reason_code="no-release")
        if self.held is not None:
            chosen = pick(self.stable.variants, profile)
            if chosen is not None and chosen.name in self.held_groups:
                base["group"] = chosen.name
                reason = (
                    f"group {chosen.name} was halted in rollout {self.held_rollout_id}: it stays on "
                    f"{self.held.version} while the others run {self.stable.version}"
                )
                return self._back_to_control(base, self.held, self.stable, current_version, reason)
        if current_version is not None and current_version == self.rolled_back_version:
            reason = (
                f"rollout {self.rolled_back_id} was {self.rolled_back_state}: back from "
                f"{current_version} to the control {self.stable.version}"
            )
            return _assignment(
                base,
                self.stable,
                reason,
                rollout_id=self.rolled_back_id,
                arm="control",
                reason_code="rollback-to-control",
                allow_downgrade_to=self.stable.version,
            )
        return _assignment(base, self.stable, "stable channel", reason_code="stable")


MEMO_SIZE = 4096  # memoized assignments per plan


def _memo_key(
    model_id: str | None,
    in_candidate_buckets: bool,
    current_version: str | None,
    profile: dict[str, Any] | None,
    tags: list[str] | None,
    own_windows: list[str] | None,
) -> tuple[Any, ...] | None:
    """What an assignment depends on besides the device's id, hashable; None when it cannot be (then
    the assignment is decided without the memo). Values carry their type: ``1``, ``1.0`` and ``True``
    are equal in Python but not in a profile."""
    try:
        prof = (
            None
            if profile is None
            else tuple(
                sorted(
                    (
                        k,
                        type(v).__name__,
                        tuple((type(x).__name__, x) for x in v) if isinstance(v, list) else v,
                    )
                    for k, v in profile.items()
                )
            )
        )
        key = (
            model_id,
            in_candidate_buckets,
            current_version,
            prof,
            None if tags is None else tuple(tags),
            None if own_windows is None else tuple(own_windows),
        )
        hash(key)
    except TypeError:  # an unhashable value (a profile is flat: not expected)
        return None
    return key


def _unassigned(device_id: str, model_id: str | None, reason: str, *, reason_code: str) -> Assignment:
    """An assignment without a release to run."""
    return Assignment(
        device_id=device_id,
        model_id=model_id,
        version=None,
        target_path=None,
        sha256=None,
        size=None,
        reason=reason,
        reason_code=reason_code,
    )


def _assignment(base: dict[str, Any], rel: ReleaseRef | None, reason: str, **extra: Any) -> Assignment:
    assert rel is not None
    base = dict(base)
    path, sha, size, variant = rel.for_profile(base.pop("profile", None))
    if variant is not None:
        reason = f"{reason}; variant {variant}"
    return Assignment(
        **base,
        version=rel.version,
        target_path=path,
        sha256=sha,
        size=size,
        variant=variant,
        reason=reason,
        **extra,
    )


def load_plan(session: Session, *, model_id: str) -> Plan:
    """Read a model's plan from the database (a few small queries; cached per plan version)."""
    from dataclasses import replace

    plan = _load_plan(session, model_id=model_id)
    pins = tuple(
        (pin.tag, ReleaseRef.of(rel, session))
        for pin, rel in session.execute(
            select(CohortPin, Release)
            .join(Release, CohortPin.release_id == Release.id)
            .where(CohortPin.model_id == model_id)
            .order_by(CohortPin.tag)
        ).all()
    )
    windows = tuple(
        (w.tag, tuple(w.windows)) for w in session.scalars(select(CohortWindows).order_by(CohortWindows.tag))
    )
    return replace(plan, pins=pins, tag_windows=windows)


def _load_plan(session: Session, *, model_id: str) -> Plan:
    rollout = session.scalars(
        select(Rollout).where(Rollout.model_id == model_id).order_by(Rollout.id.desc()).limit(1)
    ).first()
    if rollout is not None and RolloutState(rollout.state).active:
        control = session.get(Release, rollout.control_release_id)
        candidate = session.get(Release, rollout.candidate_release_id)
        assert control is not None and candidate is not None
        percent = rollout.stages[rollout.stage_index]
        cutoff = rollout.bucket_cutoff
        return Plan(
            rollout_id=rollout.id,
            rollout_state=rollout.state,
            percent=percent,
            cutoff=math.ceil(percent * 100) if cutoff is None else cutoff,
            control=ReleaseRef.of(control, session),
            candidate=ReleaseRef.of(candidate, session),
            halted_groups=frozenset(rollout.halted_groups or ()),
            rollout_tags=frozenset(rollout.tags or ()),
        )
    stable = session.scalars(
        select(Release)
        .join(Channel, Channel.release_id == Release.id)
        .where(Channel.model_id == model_id, Channel.name == STABLE)
    ).first()
    if stable is None:
        return Plan()
    plan = Plan(stable=ReleaseRef.of(stable, session))
    held = rollout is not None and rollout.state == RolloutState.PROMOTED and rollout.halted_groups
    if held and rollout is not None and rollout.candidate_release_id == stable.id:
        control = session.get(Release, rollout.control_release_id)
        if control is not None:
            return Plan(
                stable=plan.stable,
                held_groups=frozenset(rollout.halted_groups or ()),
                held=ReleaseRef.of(control, session),
                held_rollout_id=rollout.id,
            )
    if rollout is not None and RolloutState(rollout.state).ended_badly:
        candidate = session.get(Release, rollout.candidate_release_id)
        if candidate is not None and _older(stable.version, candidate.version):
            plan = Plan(
                stable=plan.stable,
                rolled_back_id=rollout.id,
                rolled_back_state=rollout.state,
                rolled_back_version=candidate.version,
            )
    return plan


def _older(a: str, b: str) -> bool:
    """True when semantic version ``a`` is lower than ``b`` (False when either does not parse)."""
    try:
        return bool(parse_semver(a) < parse_semver(b))
    except (ValueError, LiteshipError):  # an unparseable version never earns a downgrade permission
        return False


def revert_events(health: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The revert events in a check-in's ``health`` as rows for :class:`Revert` (malformed ones skipped).

    The agent reports ``health["events"]`` as ``{"event": "reverted", "version", "to", "reason", "at"}``
    and resends them until a check-in succeeds. A revert the server asked for carries ``"by": "server"``
    and is marked ``by_server`` (the reason's text is for people and is not read). ``at`` must be a
    number within 0..2100-01-01 (an integer of any size is refused without converting it).
    """
    events = health.get("events") if isinstance(health, dict) else None
    if not isinstance(events, list):
        return []
    rows = []
    for ev in events[:MAX_EVENTS]:
        if not isinstance(ev, dict) or ev.get("event") != "reverted":
            continue
        version, at, to = ev.get("version"), ev.get("at"), ev.get("to")
        if not isinstance(version, str) or not 0 < len(version) <= 64:
            continue
        if not _valid_time(at):
            continue
        assert isinstance(at, int | float)
        reason = str(ev.get("reason") or "")[:500]
        rows.append(
            {
                "version": version,
                "to_version": to if isinstance(to, str) and 0 < len(to) <= 64 else None,
                "reason": reason,
                "by_server": ev.get("by") == "server",
                "at": float(at),
            }
        )
    return rows


def about_own_arm(row: dict[str, Any], plan: Plan, assignment: Assignment) -> bool:
    """Whether a revert event may be about the device's own arm: while a rollout runs, a revert away
    from the *other* arm's version is refused (a control device cannot report reverts of the
    candidate, nor the reverse). Other versions say nothing about either arm and are kept, and so are
    server-requested reverts (never counted by the engine)."""
    arms = {r.version for r in (plan.control, plan.candidate) if r is not None}
    return bool(row["by_server"]) or row["version"] not in arms or row["version"] == assignment.version


def count_refused(conn: Any, *, device_id: str, n: int) -> None:
    """Add ``n`` to the device's ``refused_reports`` (reports about another model or arm)."""
    table = Device.__table__
    assert isinstance(table, Table)
    conn.execute(
        update(table).where(table.c.id == device_id).values(refused_reports=table.c.refused_reports + n)
    )


def _valid_time(at: Any) -> bool:
    if isinstance(at, bool) or not isinstance(at, int | float):
        return False
    if isinstance(at, int):
        return 0 <= at <= MAX_TIME  # compared as integers: float(10**400) would overflow
    return math.isfinite(at) and 0.0 <= at <= MAX_TIME


MAX_DOWNLOAD_BYTES = 2**40  # bytes of one reported download (a package is at most 512 MiB; resumes add)


def download_events(health: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``downloaded`` events of a check-in's ``health`` as rows of ``downloads`` (malformed ones
    skipped): ``{"event": "downloaded", "version", "target", "bytes", "size", "resumed_from", "at"}``."""
    events = health.get("events") if isinstance(health, dict) else None
    if not isinstance(events, list):
        return []
    rows = []
    for ev in events[:MAX_EVENTS]:
        if not isinstance(ev, dict) or ev.get("event") != "downloaded":
            continue
        target, at, version = ev.get("target"), ev.get("at"), ev.get("version")
        numbers = [ev.get(k, 0) for k in ("bytes", "size", "resumed_from")]
        ok_numbers = all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_DOWNLOAD_BYTES for n in numbers
        )
        if not isinstance(target, str) or not 0 < len(target) <= 300 or not _valid_time(at) or not ok_numbers:
            continue
        assert isinstance(at, int | float)
        rows.append(
            {
                "target": target,
                "version": version if isinstance(version, str) and 0 < len(version) <= 64 else None,
                "bytes": numbers[0],
                "size": numbers[1],
                "resumed_from": numbers[2],
                "at": float(at),
            }
        )
    return rows


def insert_downloads(conn: Any, *, device_id: str, model_id: str | None, rows: list[dict[str, Any]]) -> None:
    """Store download rows once (a resent event is ignored by the unique key)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    now = time.time()
    values = [{**r, "device_id": device_id, "model_id": model_id, "received_at": now} for r in rows]
    conn.execute(dialect.insert(Download).on_conflict_do_nothing(), values)


def insert_reverts(conn: Any, *, device_id: str, model_id: str | None, rows: list[dict[str, Any]]) -> None:
    """Store revert rows once (a resent event is ignored by the unique key), and add the new ones the
    device decided itself to its ``own_reverts``."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    now = time.time()
    values = [{**r, "device_id": device_id, "model_id": model_id, "received_at": now} for r in rows]
    stored = conn.execute(
        dialect.insert(Revert).on_conflict_do_nothing().returning(Revert.by_server), values
    ).all()
    own = sum(1 for (by_server,) in stored if not by_server)
    if own:
        table = Device.__table__
        assert isinstance(table, Table)
        conn.execute(
            update(table).where(table.c.id == device_id).values(own_reverts=table.c.own_reverts + own)
        )


# Statements built once, with bound parameters: building them per request (ORM-enabled DML, coercions,
# cache keys) was half of a check-in's server CPU (0.6 ms → 0.3 ms per check-in once removed).
_PLAN_VERSION = select(Model.plan_version).where(Model.id == bindparam("model_id"))


@functools.cache
def _update_device(columns: tuple[str, ...]) -> Any:
    """``UPDATE devices SET <columns> … RETURNING model_id, model_version, runtime`` per set of fields.

    A device's model is the one it enrolled for (or first claimed): a claim of another model changes
    neither its model nor its reported version (it is counted in ``refused_reports`` by the caller).
    """
    table = Device.__table__
    assert isinstance(table, Table)  # declared as FromClause on mapped classes; a Table here
    values: dict[str, Any] = {c: bindparam(f"new_{c}", type_=table.c[c].type) for c in columns}
    if "model_id" in values:
        own = or_(table.c.model_id.is_(None), table.c.model_id == values["model_id"])
        if "model_version" in values:
            values["model_version"] = case((own, values["model_version"]), else_=table.c.model_version)
        if "variant" in values:
            values["variant"] = case((own, values["variant"]), else_=table.c.variant)
        values["model_id"] = func.coalesce(table.c.model_id, values["model_id"])
    models = Model.__table__
    assert isinstance(models, Table)
    # the plan version of the device's model, read in the same statement (one round trip, not two)
    plan_version = select(models.c.plan_version).where(models.c.id == table.c.model_id).scalar_subquery()
    return (
        update(table)
        .where(table.c.id == bindparam("device_id"))
        .values(values)
        .returning(
            table.c.model_id,
            table.c.model_version,
            table.c.runtime,
            table.c.tags,
            table.c.update_windows,
            plan_version.label("plan_version"),
        )
    )


@functools.cache
def _update_device_if(columns: tuple[str, ...]) -> Any:
    """:func:`_update_device` that writes only when the device is enrolled for the model it claims
    (``new_model_id``) and that model's plan version is ``plan_version`` (the cached plan's): then it is
    the whole check-in (no refused report, the cached plan is the one the statement reads), else it
    writes nothing and the check-in takes the full path (``fleet.pg_checkin``)."""
    assert "model_id" in columns
    table = Device.__table__
    models = Model.__table__
    assert isinstance(table, Table) and isinstance(models, Table)
    plan_version = select(models.c.plan_version).where(models.c.id == table.c.model_id).scalar_subquery()
    model = bindparam("new_model_id", type_=table.c.model_id.type)
    return _update_device(columns).where(
        table.c.model_id == model, plan_version == bindparam("plan_version", type_=models.c.plan_version.type)
    )


class _Row(NamedTuple):
    model_id: str | None
    model_version: str | None
    runtime: dict[str, Any] | None
    tags: list[str] | None
    update_windows: list[str] | None
    plan_version: int | None


@dataclass(frozen=True)
class _RawUpdate:
    """:func:`_update_device` compiled once for a dialect and run on the DBAPI cursor of the check-in's
    connection, in its transaction. SQLAlchemy's per-execution work (compiled-cache lookup, execution
    context, typed parameter and result processing through a ``CursorResult``) was most of the
    statement's CPU (0.12 ms of a check-in on SQLite, the statement itself 0.03 ms). The same bind and
    result processors of the same column types convert the values; a driver error goes through the
    connection's own handler, so it is wrapped (``OperationalError``…) and a lost connection is
    invalidated exactly as on ``conn.execute``."""

    sql: str
    names: tuple[str, ...] | None  # positional paramstyles (SQLite's qmark): the order of the parameters
    binds: dict[str, Any]  # parameter name → bind processor (None: passed as is)
    results: tuple[Any, ...]  # result processor per returned column

    def run(self, conn: Any, params: dict[str, Any]) -> _Row | None:
        values = {k: (p(params[k]) if p is not None else params[k]) for k, p in self.binds.items()}
        args: Any = tuple(values[n] for n in self.names) if self.names is not None else values
        dbapi_conn = conn.connection.dbapi_connection
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self.sql, args)
            rows = cursor.fetchall()
        except Exception as e:  # noqa: BLE001 — wrapped and raised by SQLAlchemy's handler
            conn._handle_dbapi_exception(e, self.sql, args, cursor, None)
            raise  # not reached: the handler raises
        finally:
            cursor.close()
        if not rows:
            return None
        return _Row(*(p(v) if p is not None else v for p, v in zip(self.results, rows[0], strict=True)))

    async def run_async(self, aconn: Any, params: dict[str, Any]) -> _Row | None:
        """:meth:`run` on a psycopg ``AsyncConnection`` (driver errors are raised as they are)."""
        values = {k: (p(params[k]) if p is not None else params[k]) for k, p in self.binds.items()}
        args: Any = tuple(values[n] for n in self.names) if self.names is not None else values
        cursor = aconn.cursor()
        try:
            await cursor.execute(self.sql, args)
            rows = await cursor.fetchall()
        finally:
            await cursor.close()
        if not rows:
            return None
        return _Row(*(p(v) if p is not None else v for p, v in zip(self.results, rows[0], strict=True)))


@functools.cache
def _raw_update(dialect: Any, columns: tuple[str, ...], conditional: bool = False) -> _RawUpdate:
    statement = _update_device_if(columns) if conditional else _update_device(columns)
    compiled = statement.compile(dialect=dialect)
    binds = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()
    }
    results = tuple(
        c.type.dialect_impl(dialect).result_processor(dialect, None) for c in statement.exported_columns
    )
    positional = compiled.positiontup
    return _RawUpdate(str(compiled), tuple(positional) if positional is not None else None, binds, results)


def _params(data: CheckIn) -> dict[str, Any]:
    """The device columns a check-in writes, by name."""
    values: dict[str, Any] = {"last_seen": time.time()}
    if data.model_id is not None:
        values["model_id"] = data.model_id
    if data.model_version is not None or data.model_id is not None:
        values["model_version"] = data.model_version
        values["variant"] = data.model_variant
    if data.runtime is not None:
        values["runtime"] = data.runtime
    if data.health is not None:
        values["health"] = data.health
    return values


def _prefixed(values: dict[str, Any]) -> dict[str, Any]:
    return {f"new_{k}": v for k, v in values.items()}


def _has_events(health: dict[str, Any] | None) -> bool:
    """Whether a check-in's ``health`` holds revert or download events to store."""
    return bool(revert_events(health) or download_events(health))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


CHECKPOINT_EVERY = 500  # inline check-ins between two WAL checkpoints on the writer thread


def _busy(e: OperationalError) -> bool:
    """SQLite's "database is locked" (SQLITE_BUSY): another connection holds the write lock."""
    return "locked" in str(e.orig)


class TokenCache:
    """A bounded LRU map ``sha256(token) → DeviceIdentity`` (thread-safe)."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self._items: OrderedDict[str, DeviceIdentity] = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def get(self, token_hash: str) -> DeviceIdentity | None:
        with self._lock:
            found = self._items.get(token_hash)
            if found is not None:
                self._items.move_to_end(token_hash)
            return found

    def put(self, token_hash: str, identity: DeviceIdentity) -> None:
        with self._lock:
            self._items[token_hash] = identity
            self._items.move_to_end(token_hash)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)


class CheckIns:
    """The check-in service of one API worker: the engine plus the token and plan caches."""

    def __init__(self, engine: Engine, *, inline: Engine | None = None, pg_connections: int = 0) -> None:
        self.engine = engine
        # PostgreSQL: the common check-in runs on the event loop on a pool of async connections
        # (``fleet.pg_checkin``); ``pg_connections=0`` sends every check-in to the thread pool
        self.pool: AsyncPool | None = (
            AsyncPool(engine, pg_connections)
            if pg_connections > 0 and engine.dialect.name == "postgresql"
            else None
        )
        self.on_loop = 0  # check-ins answered on the event loop's async connections (PostgreSQL)
        # SQLite: check-ins first run on the event loop's thread, on an engine that never waits (no busy
        # timeout, no automatic checkpoint); a locked database sends one to the writer thread. Handing
        # every check-in to a thread cost more CPU than the check-in (0.17 ms of 0.44 ms: two threads
        # taking turns with the GIL), while the write itself takes ~0.03 ms when the lock is free.
        self._inline = inline
        self._inline_commits = 0
        self.tokens = TokenCache()
        # SQLite admits one writer at a time, and a connection that loses the race for the write lock
        # sleeps in its busy handler in steps of up to 100 ms: under load that was the whole p99. On
        # SQLite the server has one worker, so its check-ins run on one thread and take turns without
        # sleeping (and without waking a pool of threads that would only queue on the lock); with an
        # inline engine they run on the event loop first and reach this thread only when the database
        # is locked. PostgreSQL locks rows, so check-ins there run in parallel: on the event loop's async
        # connections (``self.pool``), and those that need the full path in the shared thread pool.
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix="liteship-checkin")
            if engine.dialect.name == "sqlite"
            else None
        )
        self._plans: dict[str, tuple[int, Plan]] = {}  # only models that exist: bounded by the registry

    def lookup(self, token_hash: str) -> DeviceIdentity | None:
        """The device of a token hash, from the cache or the database; None if unknown (not cached)."""
        found = self.tokens.get(token_hash)
        if found is None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(Device.id, Device.bucket).where(Device.token_hash == token_hash)
                ).first()
            if row is None:
                return None
            found = DeviceIdentity(row.id, row.bucket)
            self.tokens.put(token_hash, found)
        return found

    async def check_in_async(self, *, device: DeviceIdentity, data: CheckIn) -> Assignment | None:
        """A check-in on the event loop when it can be (SQLite: the inline engine; PostgreSQL: the async
        connections, :meth:`_check_in_on_loop`), else :meth:`check_in` on the SQLite writer thread or in
        the thread pool."""
        if self._inline is not None and self._writer is not None:
            try:
                found = self.check_in(device=device, data=data, engine=self._inline)
            except OperationalError as e:
                if not _busy(e):
                    raise
            else:  # the WAL is checkpointed by the writer thread (fsyncs off the event loop)
                self._inline_commits += 1
                if self._inline_commits % CHECKPOINT_EVERY == 0:
                    self._writer.submit(self._checkpoint)
                return found
        if self.pool is not None:
            found = await self._check_in_on_loop(self.pool, device, data)
            if found is not None:
                self.on_loop += 1
                return found
        call = functools.partial(self.check_in, device=device, data=data)
        if self._writer is not None:
            return await asyncio.get_running_loop().run_in_executor(self._writer, call)
        return await run_in_threadpool(call)

    def assignment(self, conn: Any, *, device: Device) -> Assignment:
        """What ``device`` (a row) is assigned now, through the plan cache (the telemetry path)."""
        plan = self.plan_for(conn, device.model_id) if device.model_id is not None else Plan()
        return plan.assign(
            device_id=device.id,
            model_id=device.model_id,
            bucket=device.bucket,
            current_version=device.model_version,
            profile=device.runtime,
            tags=device.tags,
            own_windows=device.update_windows,
        )

    def _checkpoint(self) -> None:
        """Copy the WAL into the database (PASSIVE: waits for no one); on the writer thread."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:  # noqa: BLE001 — the next checkpoint (or any other writer's) catches up
            log.warning("WAL checkpoint failed", exc_info=True)

    async def _check_in_on_loop(
        self, pool: AsyncPool, device: DeviceIdentity, data: CheckIn
    ) -> Assignment | None:
        """The common PostgreSQL check-in on the event loop (``fleet.pg_checkin``), or None: take the
        full path (which then does the whole check-in: this one wrote nothing)."""
        if data.model_id is None or _has_events(data.health):
            return None
        cached = self._plans.get(data.model_id)
        if cached is None:
            return None
        version, plan = cached
        params = _params(data)
        statement = _raw_update(self.engine.dialect, tuple(sorted(params)), True)
        conn = await pool.acquire()
        if conn is None:
            return None
        try:
            row = await statement.run_async(
                conn, {"device_id": device.id, "plan_version": version, **_prefixed(params)}
            )
        except Exception as e:  # noqa: BLE001 — the full path answers (and raises as it always did)
            # a connection error, a value the database refuses: nothing was written (autocommit); a
            # connection that is not cleanly idle is closed
            pool.release(conn)
            log.info("check-in on the event loop failed, retried on the thread pool: %s", _first_line(e))
            return None
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            pool.discard(conn)
            raise
        pool.release(conn)
        if row is None:
            return None
        return plan.assign(
            device_id=device.id,
            model_id=data.model_id,
            bucket=device.bucket,
            current_version=row.model_version,
            profile=data.runtime if data.runtime is not None else row.runtime,
            tags=row.tags,
            own_windows=row.update_windows,
        )

    def check_in(
        self, *, device: DeviceIdentity, data: CheckIn, engine: Engine | None = None
    ) -> Assignment | None:
        """Record what a device runs and return what it should run (None: the device row is gone)."""
        values = _params(data)
        with (engine or self.engine).begin() as conn:
            params = _prefixed(values)
            statement = _raw_update(conn.dialect, tuple(sorted(values)))
            row = statement.run(conn, {"device_id": device.id, **params})
            if row is None:
                return None
            model_id = row.model_id
            plan = self._plan_at(conn, model_id, row.plan_version) if model_id is not None else Plan()
            assignment = plan.assign(
                device_id=device.id,
                model_id=model_id,
                bucket=device.bucket,
                current_version=row.model_version,
                profile=data.runtime if data.runtime is not None else row.runtime,
                tags=row.tags,
                own_windows=row.update_windows,
            )
            events = revert_events(data.health)
            own = [r for r in events if about_own_arm(r, plan, assignment)]
            refused = len(events) - len(own) + (data.model_id is not None and data.model_id != model_id)
            insert_reverts(conn, device_id=device.id, model_id=model_id, rows=own)
            insert_downloads(conn, device_id=device.id, model_id=model_id, rows=download_events(data.health))
            if refused:
                count_refused(conn, device_id=device.id, n=refused)
        return assignment

    def plan_for(self, conn: Any, model_id: str) -> Plan:
        """The model's plan, from the cache while its plan version (read on ``conn``) is unchanged."""
        version = conn.execute(_PLAN_VERSION, {"model_id": model_id}).scalar_one_or_none()
        return self._plan_at(conn, model_id, version)

    def _plan_at(self, conn: Any, model_id: str, version: int | None) -> Plan:
        """The model's plan at ``version`` (read on ``conn`` in this transaction), cached while it holds."""
        if version is None:  # no release of this model was ever published
            return Plan()
        cached = self._plans.get(model_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        with Session(bind=conn) as session:
            plan = load_plan(session, model_id=model_id)
        self._plans[model_id] = (version, plan)
        return plan
