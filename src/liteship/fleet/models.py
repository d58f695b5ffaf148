"""Database tables (SQLAlchemy 2) and the HTTP schemas (Pydantic ``*Create`` / ``*Public``).

Times are UNIX seconds (float) so SQLite and PostgreSQL store and compare them the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from liteship import confidence

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VARIANT_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,47}$"  # liteship.package.variants.NAME
TAG_PATTERN = r"^[a-z0-9][a-z0-9._:=-]{0,63}$"  # a cohort tag: ring=canary, site=berlin, customer.acme
WINDOW_PATTERN = (
    r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"  # local time, may wrap midnight
)
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
Window = Annotated[str, Field(pattern=WINDOW_PATTERN)]
MAX_TAGS = 16
CONFIDENCE_BINS = confidence.BINS  # the bins devices and drift references share

# Bounds of every number a device sends (the trust boundary: a device token is not trusted with the
# fleet's aggregates). Counts fit a 32-bit INTEGER column on PostgreSQL; times are UNIX seconds.
MAX_COUNT = 10**9  # per window and per histogram bin
MAX_TIME = 4_102_444_800.0  # 2100-01-01T00:00:00Z
MAX_WINDOW_S = 7 * 86_400.0  # longest telemetry window
MAX_LATENCY_MS = 1e7  # a latency edge (about 2.8 hours)
MAX_RATE_PER_S = 100_000  # inferences (and errors) per second of a window: beyond any edge device
MAX_CLOCK_AHEAD_S = 86_400.0  # a window may end at most this far after the server's clock
MAX_DB_ID = 2**31 - 1  # integer primary keys (path parameters are bounded by this)
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Time = Annotated[float, Field(ge=0.0, le=MAX_TIME, allow_inf_nan=False)]
LatencyEdge = Annotated[float, Field(gt=0.0, le=MAX_LATENCY_MS, allow_inf_nan=False)]


class Base(DeclarativeBase):
    pass


class Model(Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    # bumped with every change to the model's assignment plan (``crud.bump_plan``)
    plan_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    target_path: Mapped[str] = mapped_column(String(300), unique=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class ReleaseVariant(Base):
    """One signed package of a multi-variant release: the hardware it is for (its manifest's
    ``variant``) and its TUF target (0009). A release without variants has no rows here."""

    __tablename__ = "release_variants"
    __table_args__ = (UniqueConstraint("release_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    name: Mapped[str] = mapped_column(String(48))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    when: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    target_path: Mapped[str] = mapped_column(String(300), unique=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Channel(Base):
    """A named pointer per model (``stable`` is the control of every rollout)."""

    __tablename__ = "channels"
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    bucket: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    runtime: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    registered_at: Mapped[float] = mapped_column(Float, default=time.time)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    # reports refused because they are not about this device's model or arm: windows for another
    # model, revert events for a version it is not assigned, check-ins claiming another model (0006)
    refused_reports: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # revert events the device decided itself (not server-requested), counted as they are stored (0007):
    # the devices list reads this instead of counting the reverts table
    own_reverts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    variant: Mapped[str | None] = mapped_column(String(48), nullable=True)  # what it reports running (0009)
    tags: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # cohorts (0010)
    update_windows: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # local HH:MM-HH:MM (0010)


class RolloutState(StrEnum):
    """The states of a rollout (the transitions live in :mod:`liteship.fleet.rollout`)."""

    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"  # by the decision engine
    ABORTED = "aborted"  # by an admin
    PROMOTED = "promoted"

    @property
    def active(self) -> bool:
        """Running or paused: the rollout decides what its model's devices run."""
        return self in (RolloutState.RUNNING, RolloutState.PAUSED)

    @property
    def ended_badly(self) -> bool:
        """Halted or aborted: the candidate's devices are sent back (``rollback-to-control``)."""
        return self in (RolloutState.HALTED, RolloutState.ABORTED)


ACTIVE_STATES = tuple(s for s in RolloutState if s.active)


class Rollout(Base):
    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    control_release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    candidate_release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    stages: Mapped[list[float]] = mapped_column(JSON)
    stage_index: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=RolloutState.RUNNING, index=True)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    stage_started_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)
    evaluated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # small fleets (0004): at least this many devices on each arm per stage, through ``bucket_cutoff``
    # (candidate = buckets below it), computed when a stage starts; None: the stage's percent decides
    min_arm_devices: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bucket_cutoff: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # per-group rollouts (0009): when one hardware group's candidate is worse, halt that group only
    # ("group") or the whole rollout ("release"); the groups halted so far (candidate variant names)
    halt_scope: Mapped[str] = mapped_column(String(16), default="release", server_default="release")
    halted_groups: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    tags: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # only devices with all (0010)


class CohortPin(Base):
    """Devices carrying ``tag`` run this release of the model, whatever the channels and rollouts say (0010)."""

    __tablename__ = "cohort_pins"
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class CohortWindows(Base):
    """The update windows (device-local ``HH:MM-HH:MM``) of every device carrying ``tag`` (0010)."""

    __tablename__ = "cohort_windows"
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    windows: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)


class Decision(Base):
    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), index=True)
    at: Mapped[float] = mapped_column(Float, default=time.time)
    stage_index: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(16))  # "engine" | "admin"
    reasons: Mapped[list[str]] = mapped_column(JSON)
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON)


class TelemetryWindow(Base):
    __tablename__ = "telemetry_windows"
    __table_args__ = (
        UniqueConstraint("device_id", "window_id"),
        Index("ix_telemetry_model_version_ended", "model_id", "model_version", "ended"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    window_id: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started: Mapped[float] = mapped_column(Float)
    ended: Mapped[float] = mapped_column(Float)
    inferences: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    rollbacks: Mapped[int] = mapped_column(Integer)
    out_of_range_fraction: Mapped[float] = mapped_column(Float)
    confidence_hist: Mapped[list[int]] = mapped_column(JSON)
    latency_hist: Mapped[list[int]] = mapped_column(JSON)
    latency_edges_ms: Mapped[list[float]] = mapped_column(JSON)
    dropped_windows: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[float] = mapped_column(Float, default=time.time)
    # False when the window names another model/version than the server assigned the device when it
    # arrived: stored (the agent's spool must drain) but not counted by decisions or drift (0004)
    assigned: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    variant: Mapped[str | None] = mapped_column(String(48), nullable=True)  # measured on (0009)


class Download(Base):
    """A verified download a device reported (0011): bytes over the network for one target."""

    __tablename__ = "downloads"
    __table_args__ = (UniqueConstraint("device_id", "target", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    model_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target: Mapped[str] = mapped_column(String(300), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    resumed_from: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    at: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float, default=time.time)


HOUR_S = 3600.0  # the period of TelemetryHour: drift of any whole number of hours is read from it
HOUR_BINS = tuple(f"c{i:02d}" for i in range(CONFIDENCE_BINS))


class _ConfidenceBins:
    """The summed top-1 confidence histogram of an hour: one integer column per bin (``c00``…)."""

    c00: Mapped[int] = mapped_column(BigInteger, default=0)
    c01: Mapped[int] = mapped_column(BigInteger, default=0)
    c02: Mapped[int] = mapped_column(BigInteger, default=0)
    c03: Mapped[int] = mapped_column(BigInteger, default=0)
    c04: Mapped[int] = mapped_column(BigInteger, default=0)
    c05: Mapped[int] = mapped_column(BigInteger, default=0)
    c06: Mapped[int] = mapped_column(BigInteger, default=0)
    c07: Mapped[int] = mapped_column(BigInteger, default=0)
    c08: Mapped[int] = mapped_column(BigInteger, default=0)
    c09: Mapped[int] = mapped_column(BigInteger, default=0)
    c10: Mapped[int] = mapped_column(BigInteger, default=0)
    c11: Mapped[int] = mapped_column(BigInteger, default=0)
    c12: Mapped[int] = mapped_column(BigInteger, default=0)
    c13: Mapped[int] = mapped_column(BigInteger, default=0)
    c14: Mapped[int] = mapped_column(BigInteger, default=0)
    c15: Mapped[int] = mapped_column(BigInteger, default=0)
    c16: Mapped[int] = mapped_column(BigInteger, default=0)
    c17: Mapped[int] = mapped_column(BigInteger, default=0)
    c18: Mapped[int] = mapped_column(BigInteger, default=0)
    c19: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def confidence_hist(self) -> list[int]:
        return [int(getattr(self, c)) for c in HOUR_BINS]


class TelemetryHour(_ConfidenceBins, Base):
    """The counted windows of one model version per hour of their end, summed as they arrive (0007).

    Drift reads these instead of the windows (O(hours), not O(windows)), and they outlive the raw
    windows the retention policy deletes (liteship.fleet.retention). One integer column per confidence
    bin, so adding a window is one atomic ``UPDATE … SET c00 = c00 + …`` on SQLite and PostgreSQL alike.
    """

    __tablename__ = "telemetry_hours"
    __table_args__ = (UniqueConstraint("model_id", "model_version", "hour"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    hour: Mapped[float] = mapped_column(Float)  # (ended // HOUR_S) * HOUR_S
    windows: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # stored rows the backfill could not read


class TelemetryVariantHour(_ConfidenceBins, Base):
    """The counted windows of one variant of a model version per hour of their end (0012): the sums of
    :class:`TelemetryHour`, split by the variant the device reported running (windows that name no
    variant count only in :class:`TelemetryHour`). Per-variant drift reads these (issue 24)."""

    __tablename__ = "telemetry_variant_hours"
    __table_args__ = (UniqueConstraint("model_id", "model_version", "variant", "hour"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(48))
    hour: Mapped[float] = mapped_column(Float)  # (ended // HOUR_S) * HOUR_S
    windows: Mapped[int] = mapped_column(Integer, default=0)


class HourSums(NamedTuple):
    """One :class:`TelemetryHour` as read by drift."""

    hour: float
    windows: int
    skipped: int
    confidence_hist: list[int]


class DashboardSession(Base):
    """A signed-in dashboard browser: the sha256 of its random cookie value, and when it expires (0004)."""

    __tablename__ = "dashboard_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class Revert(Base):
    """A device went back from ``version`` to ``to_version`` (an event from its check-in ``health``).

    Stored once per (device, version, at): the agent resends unacknowledged events after a lost answer.
    ``by_server`` marks reverts the server asked for (a halted or aborted rollout), which say nothing
    about the version's health and are not counted by the decision engine.
    """

    __tablename__ = "reverts"
    __table_args__ = (
        UniqueConstraint("device_id", "version", "at"),
        Index("ix_reverts_model_version_at", "model_id", "version", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    model_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str] = mapped_column(String(64))
    to_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(String(500))
    by_server: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[float] = mapped_column(Float)  # the device's clock
    received_at: Mapped[float] = mapped_column(Float, default=time.time)


class RevertMark(NamedTuple):
    """What the decision engine and the charts read of a revert: who, and when (not a whole row)."""

    device_id: str
    at: float


Reverts = Sequence[Revert | RevertMark]


# ---- HTTP schemas ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    is_default: bool
    when: list[dict[str, Any]]
    sha256: str
    size: int
    target_path: str


class ReleasePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    model_id: str
    version: str
    sha256: str
    size: int
    target_path: str
    created_at: float
    channels: list[str] = Field(default_factory=list)
    variants: list[VariantPublic] = Field(default_factory=list)  # a multi-variant release (issue 24)


class ModelPublic(BaseModel):
    id: str
    channels: dict[str, str]
    releases: list[ReleasePublic]


class DeviceCreate(_Strict):
    device_id: str = Field(pattern=ID_PATTERN)
    enrollment_token: str = Field(max_length=512)
    model_id: str | None = Field(default=None, pattern=ID_PATTERN)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)  # cohorts (issue 24)


class DeviceSettings(_Strict):
    """What the operator sets on a device: its tags and its own update windows (None: unchanged)."""

    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    add_tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    remove_tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    update_windows: list[Window] | None = Field(default=None, max_length=8)


class CohortPinCreate(_Strict):
    tag: Tag
    version: str = Field(max_length=64)


class CohortWindowsSet(_Strict):
    windows: list[Window] = Field(max_length=8)  # empty: the tag no longer restricts updates


class DeviceRegistered(BaseModel):
    device_id: str
    token: str


class DevicePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    bucket: int
    model_id: str | None
    model_version: str | None  # what the device last reported running
    runtime: dict[str, Any] | None
    health: dict[str, Any] | None
    registered_at: float
    last_seen: float | None
    refused_reports: int = 0  # reports about another model or arm, refused (issue 21)
    variant: str | None = None  # the variant it reports running (issue 24)
    assigned_variant: str | None = None
    tags: list[str] | None = None
    update_windows: list[str] | None = None  # its own; the assignment adds those of its tags
    downloaded_bytes: int = 0  # over the network, every target it reported (issue 24)
    # additive fields (listing only): what the server assigns, and when the device last checked in
    assigned_version: str | None = None
    assignment_reason: str | None = None
    failed_versions: list[str] = Field(default_factory=list)  # versions the device refuses to run
    last_checkin: str | None = None  # ISO 8601 UTC of last_seen
    reverts: int = 0  # reverts the device decided (server-requested ones are not counted)
    profile_summary: str | None = None  # ``runtime`` (the device profile) in one line
    health_summary: str | None = None  # health window, refused versions, reverts in one line


class RevertPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    device_id: str
    model_id: str | None
    version: str
    to_version: str | None
    reason: str
    by_server: bool
    at: float
    received_at: float


class TelemetryWindowPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    window_id: str
    model_id: str | None
    model_version: str | None
    started: float
    ended: float
    inferences: int
    errors: int
    rollbacks: int
    out_of_range_fraction: float
    confidence_hist: list[int]
    latency_hist: list[int]
    latency_edges_ms: list[float]
    dropped_windows: int
    received_at: float
    variant: str | None = None  # the variant the device ran (issue 24)


class CheckIn(_Strict):
    """A device's check-in: what it runs, its profile (``runtime``) and its health.

    ``runtime`` is the device profile (a flat object: see :func:`check_profile`); ``health`` is any
    JSON object within :func:`bounded_json`'s limits (depth and finite numbers; long strings and
    lists are cut).
    """

    model_id: str | None = Field(default=None, pattern=ID_PATTERN)
    model_version: str | None = Field(default=None, max_length=64)
    model_variant: str | None = Field(default=None, pattern=VARIANT_PATTERN)
    runtime: dict[str, Any] | None = None
    health: dict[str, Any] | None = None

    @field_validator("runtime")
    @classmethod
    def _profile(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_profile(value)

    @field_validator("health")
    @classmethod
    def _health(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else bounded_json(value, where="health")


MAX_PROFILE_KEYS = 64
MAX_PROFILE_STR = 200
MAX_PROFILE_INT = 2**53  # exact in a JSON double (memory in MB, core counts, …)
MAX_JSON_DEPTH = 8
MAX_JSON_ITEMS = 1_000  # per list or object
MAX_JSON_STR = 2_000


def check_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """Validate a device profile: a flat object of short strings, bounded numbers and lists of strings.

    Every field is optional (the agent's ``device_profile()`` sends machine, cpu_model, cores, isa,
    memory_mb, os, python, litert, liteship, accelerators, accelerator); unknown keys are kept.

    Raises:
        ValueError: a value is nested, too long, out of bounds or not finite.
    """
    if len(profile) > MAX_PROFILE_KEYS:
        raise ValueError(f"the profile has {len(profile)} keys; at most {MAX_PROFILE_KEYS} are accepted")
    for key, value in profile.items():
        if not 0 < len(key) <= 64:
            raise ValueError(f"profile key {key[:64]!r} must have 1 to 64 characters")
        if isinstance(value, list):
            if len(value) > 64 or not all(isinstance(v, str) and len(v) <= MAX_PROFILE_STR for v in value):
                raise ValueError(f"profile.{key} must be a list of at most 64 strings of ≤ 200 characters")
        elif isinstance(value, dict):
            raise ValueError(f"profile.{key} must be a string, number, boolean or list of strings")
        else:
            _check_scalar(f"profile.{key}", value, max_str=MAX_PROFILE_STR)
    return profile


def _check_scalar(path: str, v: Any, *, max_str: int) -> None:
    """A JSON scalar: a string of ≤ ``max_str`` characters, a boolean, null, or a finite number ±2**53."""
    if isinstance(v, str):
        if len(v) > max_str:
            raise ValueError(f"{path} is longer than {max_str} characters")
    elif isinstance(v, bool) or v is None:
        return
    elif isinstance(v, int):
        if abs(v) > MAX_PROFILE_INT:  # compared as integers: float(10**400) would overflow
            raise ValueError(f"{path} is out of bounds (±2**53)")
    elif isinstance(v, float):
        if not math.isfinite(v) or abs(v) > MAX_PROFILE_INT:
            raise ValueError(f"{path} must be a finite number within ±2**53")
    else:
        raise ValueError(f"{path} has an unsupported type {type(v).__name__}")


def bounded_json(value: Any, *, where: str, depth: int = 0) -> Any:
    """A copy of device JSON that a column or an aggregate can hold: strings cut to 2,000 characters,
    lists and objects to their first 1,000 items (a verbose agent is never locked out of check-ins);
    nesting deeper than 8, and numbers that are not finite or beyond ±2**53, are refused.

    Raises:
        ValueError: naming the first offending path.
    """
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        items = list(value.items())[:MAX_JSON_ITEMS]
        return {
            k[:MAX_JSON_STR]: bounded_json(v, where=f"{where}.{k[:40]}", depth=depth + 1) for k, v in items
        }
    if isinstance(value, list):
        return [
            bounded_json(v, where=f"{where}[{i}]", depth=depth + 1)
            for i, v in enumerate(value[:MAX_JSON_ITEMS])
        ]
    if isinstance(value, str):
        return value[:MAX_JSON_STR]
    _check_scalar(where, value, max_str=MAX_JSON_STR)
    return value


class Assignment(BaseModel):
    """What a device should run: the TUF target to fetch, and why (rollout arm).

    ``reason`` is for people; ``reason_code`` is for programs: ``no-model``, ``no-release``,
    ``stable``, ``rollout-control``, ``rollout-candidate`` or ``rollback-to-control``. With
    ``rollback-to-control`` (a halted or aborted rollout sends a device that runs its candidate back),
    ``allow_downgrade_to`` names the one older version the device may install although it is not
    the device's own fallback slot. TUF still guards the metadata against rollback.
    """

    device_id: str
    model_id: str | None
    version: str | None
    target_path: str | None
    sha256: str | None
    size: int | None
    rollout_id: int | None = None
    arm: str | None = None  # "control" | "candidate" | None (no rollout)
    reason: str
    reason_code: str | None = None
    allow_downgrade_to: str | None = None
    # the release's variant chosen for this device's profile (None: the release has no variants);
    # ``target_path``/``sha256``/``size`` are that variant's package (issue 24)
    variant: str | None = None
    group: str | None = None  # the rollout's hardware group the device is in (the candidate's variant)
    # device-local HH:MM-HH:MM windows the agent may install in (None: any time); an operator's
    # emergency revert (``rollback-to-control``) is installed at once (issue 24)
    update_windows: list[str] | None = None
    mirrors: list[str] = Field(default_factory=list)  # untrusted target base URLs, tried before this server
    jobs: list[dict[str, Any]] | None = None  # bench jobs to run (liteship.fleet.jobs_models.BenchOffer)
    capture: dict[str, Any] | None = None  # the signed capture policy's TUF target (liteship.fleet.samples)


class TelemetryCreate(BaseModel):
    """One aggregated window, as the agent's ``Window.to_dict()`` produces it (extra fields ignored)."""

    model_config = ConfigDict(extra="ignore")
    window_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    model_id: str | None = Field(default=None, pattern=ID_PATTERN)
    model_version: str | None = Field(default=None, max_length=64)
    started: Time
    ended: Time
    inferences: Count
    errors: Count = 0
    rollbacks: int = Field(default=0, ge=0, le=10**6)
    out_of_range_fraction: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    confidence_hist: list[Count] = Field(min_length=CONFIDENCE_BINS, max_length=CONFIDENCE_BINS)
    latency_hist: list[Count] = Field(default_factory=list, max_length=64)
    latency_edges_ms: list[LatencyEdge] = Field(default_factory=list, max_length=63)
    dropped_windows: Count = 0

    @model_validator(mode="after")
    def _consistent(self) -> TelemetryCreate:
        if self.ended < self.started:
            raise ValueError(
                f"the window ends before it starts (ended {self.ended} < started {self.started})"
            )
        if self.ended - self.started > MAX_WINDOW_S:
            raise ValueError(f"the window is longer than {MAX_WINDOW_S:.0f} s")
        ahead = self.ended - time.time()
        if ahead > MAX_CLOCK_AHEAD_S:
            raise ValueError(
                f"the window ends {ahead:.0f} s after the server's clock (at most {MAX_CLOCK_AHEAD_S:.0f} s "
                "ahead is accepted); set the device's clock (NTP)"
            )
        self._check_counts()
        edges = self.latency_edges_ms
        if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise ValueError("latency_edges_ms must increase strictly")
        if (edges or self.latency_hist) and len(self.latency_hist) != len(edges) + 1:
            raise ValueError(
                f"latency_hist has {len(self.latency_hist)} bins; expected len(latency_edges_ms)+1 = "
                f"{len(edges) + 1}"
            )
        return self

    def _check_counts(self) -> None:
        """The counts agree with each other and with the window's length (one device cannot claim 10**9
        predictions in a second, or predictions it did not make, to meet a rollout's minimum sample)."""
        seconds = max(self.ended - self.started, 1.0)
        if self.inferences + self.errors > MAX_RATE_PER_S * seconds:
            raise ValueError(
                f"inferences + errors = {self.inferences + self.errors} in a {seconds:.0f}-s window is over "
                f"{MAX_RATE_PER_S} per second; expected counts a device can reach"
            )
        for name in ("confidence_hist", "latency_hist"):
            total = sum(getattr(self, name))
            if total > self.inferences:
                raise ValueError(
                    f"{name} counts {total} inferences but the window has inferences = {self.inferences}; "
                    "expected at most one histogram count per inference"
                )


class TelemetryAccepted(BaseModel):
    window_id: str
    duplicate: bool
    # False: stored, but not for the model/version the server assigns this device (not counted)
    counted: bool = True
    note: str | None = None


class RolloutCreate(_Strict):
    model_id: str = Field(pattern=ID_PATTERN)
    candidate_version: str = Field(max_length=64)
    control_version: str | None = Field(default=None, max_length=64)  # default: the stable channel
    stages: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None, min_length=1, max_length=10
    )
    thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1e12, allow_inf_nan=False)]] | None = None
    # small fleets: at least this many devices on each arm from the first stage (see docs/fleet.md)
    min_arm_devices: int = Field(default=0, ge=0, le=100_000)
    # per-group rollouts: a worse group halts itself only ("group") or the whole rollout ("release")
    halt_scope: Literal["group", "release"] = "release"
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)  # only devices with all of them


class DecisionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: float
    stage_index: int
    action: str
    by: str
    reasons: list[str]
    numbers: dict[str, Any]


class RolloutPublic(BaseModel):
    id: int
    model_id: str
    control_version: str
    candidate_version: str
    stages: list[float]
    stage_index: int
    percent: float
    state: str
    thresholds: dict[str, Any]
    created_at: float
    stage_started_at: float
    updated_at: float
    decisions: list[DecisionPublic] = Field(default_factory=list)
    min_arm_devices: int = 0
    # an active rollout only: devices per arm per stage, what blocks a decision, the engine's verdict now
    plan: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    next: dict[str, Any] | None = None
    halt_scope: str = "release"
    halted_groups: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    groups: dict[str, Any] = Field(default_factory=dict)  # per hardware group: devices and verdict
