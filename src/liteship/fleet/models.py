"""Database tables (SQLAlchemy 2) and the HTTP schemas (Pydantic ``*Create`` / ``*Public``).

Times are UNIX seconds (float) so SQLite and PostgreSQL store and compare them the same way.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
CONFIDENCE_BINS = 20


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


class Rollout(Base):
    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    control_release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    candidate_release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    stages: Mapped[list[float]] = mapped_column(JSON)
    stage_index: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="running", index=True)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    stage_started_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)
    evaluated_at: Mapped[float | None] = mapped_column(Float, nullable=True)


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


# ---- HTTP schemas ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class ModelPublic(BaseModel):
    id: str
    channels: dict[str, str]
    releases: list[ReleasePublic]


class DeviceCreate(_Strict):
    device_id: str = Field(pattern=ID_PATTERN)
    enrollment_token: str = Field(max_length=512)
    model_id: str | None = Field(default=None, pattern=ID_PATTERN)


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
    # additive fields (listing only): what the server assigns, and when the device last checked in
    assigned_version: str | None = None
    assignment_reason: str | None = None
    failed_versions: list[str] = Field(default_factory=list)  # versions the device refuses to run
    last_checkin: str | None = None  # ISO 8601 UTC of last_seen
    reverts: int = 0


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


class CheckIn(_Strict):
    model_id: str | None = Field(default=None, pattern=ID_PATTERN)
    model_version: str | None = Field(default=None, max_length=64)
    runtime: dict[str, Any] | None = None
    health: dict[str, Any] | None = None


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
    jobs: list[dict[str, Any]] | None = None  # bench jobs to run (liteship.fleet.jobs_models.BenchOffer)


class TelemetryCreate(BaseModel):
    """One aggregated window, as the agent's ``Window.to_dict()`` produces it (extra fields ignored)."""

    model_config = ConfigDict(extra="ignore")
    window_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    model_id: str | None = Field(default=None, pattern=ID_PATTERN)
    model_version: str | None = Field(default=None, max_length=64)
    started: float
    ended: float
    inferences: int = Field(ge=0, le=10**9)
    errors: int = Field(default=0, ge=0, le=10**9)
    rollbacks: int = Field(default=0, ge=0, le=10**6)
    out_of_range_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    confidence_hist: list[int] = Field(min_length=CONFIDENCE_BINS, max_length=CONFIDENCE_BINS)
    latency_hist: list[int] = Field(default_factory=list, max_length=64)
    latency_edges_ms: list[float] = Field(default_factory=list, max_length=63)
    dropped_windows: int = Field(default=0, ge=0)


class TelemetryAccepted(BaseModel):
    window_id: str
    duplicate: bool


class RolloutCreate(_Strict):
    model_id: str = Field(pattern=ID_PATTERN)
    candidate_version: str = Field(max_length=64)
    control_version: str | None = Field(default=None, max_length=64)  # default: the stable channel
    stages: list[float] | None = Field(default=None, min_length=1, max_length=10)
    thresholds: dict[str, float] | None = None


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
