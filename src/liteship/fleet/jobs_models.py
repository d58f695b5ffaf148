"""Bench jobs: tables (``bench_jobs``, ``bench_tasks``; migration 0005) and their HTTP schemas.

A job is a set of ``.tflite`` variants to benchmark on a set of devices. Each variant is a TUF target
(``bench-jobs/<job id>/<name>``) signed with the fleet's targets key, so a device verifies it exactly as
it verifies a model's target. One task per (job, device) carries that device's state and results.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from liteship.fleet.models import ID_PATTERN, Base

JOB_ID_PATTERN = r"^job-[0-9a-f]{16}$"
VARIANT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"
TASK_OPEN = ("queued", "running")
TASK_DONE = ("done", "failed", "refused")
MAX_VARIANTS = 16
MAX_DEVICES = 500
TARGET_PREFIX = "bench-jobs"


class BenchJob(Base):
    __tablename__ = "bench_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # name, sha256, size, target_path
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # runs, warmup, min_seconds, threads
    selector: Mapped[dict[str, Any]] = mapped_column(JSON)  # how the devices were chosen (for people)
    tuf: Mapped[str] = mapped_column(String(32))  # "signed" | "pending-offline-signature"


class BenchTask(Base):
    __tablename__ = "bench_tasks"
    __table_args__ = (
        UniqueConstraint("job_id", "device_id"),
        Index("ix_bench_tasks_device_state", "device_id", "state"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("bench_jobs.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    mode: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # how the live loop was spared
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)


# ---- HTTP schemas ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantRef(_Strict):
    name: str = Field(pattern=VARIANT_NAME_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class BenchJobCreate(_Strict):
    """Queue a job: variants already uploaded (``POST /api/v1/bench/variants``), and which devices.

    Exactly one of ``devices``, ``group`` and ``profile`` chooses the devices.
    """

    variants: list[VariantRef] = Field(min_length=1, max_length=MAX_VARIANTS)
    devices: list[str] | None = Field(default=None, min_length=1, max_length=MAX_DEVICES)
    group: str | None = Field(default=None, max_length=200)
    profile: dict[str, str] | None = Field(default=None, min_length=1, max_length=16)
    runs: int = Field(default=50, ge=1, le=10_000)
    warmup: int = Field(default=5, ge=0, le=1_000)
    min_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    threads: int | None = Field(default=None, ge=1, le=64)  # None: the agent's own thread count


class BenchOffer(BaseModel):
    """What a device is told at check-in (``Assignment.jobs``): the job to run and its TUF targets."""

    job_id: str
    variants: list[dict[str, Any]]  # name, target_path, sha256, size
    runs: int
    warmup: int
    min_seconds: float
    threads: int | None = None


class VariantFigures(BaseModel):
    """One variant's figures from a device, as ``liteship bench`` reports them (or its error)."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=VARIANT_NAME_PATTERN)
    ok: bool
    error: str | None = Field(default=None, max_length=1000)
    threads: int | None = Field(default=None, ge=1, le=1024)
    init_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    first_inference_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    p50_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    p95_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    p99_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    mean_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    runs: int | None = Field(default=None, ge=0, le=10**7)
    rss_delta_bytes: int | None = Field(default=None, ge=0, le=1 << 45)
    peak_rss_bytes: int | None = Field(default=None, ge=0, le=1 << 45)


class BenchReport(_Strict):
    """A device's answer to a job: ``running`` (started), ``done``, ``failed`` or ``refused``."""

    state: Literal["running", "done", "failed", "refused"]
    error: str | None = Field(default=None, max_length=1000)
    results: list[VariantFigures] = Field(default_factory=list, max_length=MAX_VARIANTS)
    profile: dict[str, Any] | None = None
    mode: dict[str, Any] | None = None


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    device_id: str
    state: str
    error: str | None
    results: list[dict[str, Any]] | None
    profile: dict[str, Any] | None
    mode: dict[str, Any] | None
    created_at: float
    updated_at: float


class BenchJobPublic(BaseModel):
    id: str
    created_at: float
    variants: list[dict[str, Any]]
    settings: dict[str, Any]
    selector: dict[str, Any]
    tuf: str
    tasks: list[TaskPublic]
    state: str  # "open" while a task is queued or running, else "complete"


__all__ = [
    "BenchJob",
    "BenchTask",
    "BenchJobCreate",
    "BenchOffer",
    "BenchReport",
    "BenchJobPublic",
    "TaskPublic",
    "VariantFigures",
    "VariantRef",
    "ID_PATTERN",
]
