"""Device jobs: tables (``bench_jobs``, ``bench_tasks``; migration 0005) and their HTTP schemas.

A job is a set of ``.tflite`` variants to run on a set of devices: ``bench`` (timing), ``validate``
(outputs on a signed validation subset, compared on the server) or ``profile`` (per-op timing). The
kind and its inputs live in the job's ``settings`` (JSON), so the tables are those of bench jobs. Each variant is a TUF target
(``bench-jobs/<job id>/<name>``) signed with the fleet's targets key, so a device verifies it exactly as
it verifies a model's target. One task per (job, device) carries that device's state and results.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from liteship.fleet.models import ID_PATTERN, MAX_TAGS, Base, Tag

JOB_ID_PATTERN = r"^job-[0-9a-f]{16}$"
VARIANT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"
TASK_OPEN = ("queued", "running")
TASK_DONE = ("done", "failed", "refused")
MAX_VARIANTS = 16
MAX_DEVICES = 500
TARGET_PREFIX = "bench-jobs"
JOB_KINDS = ("bench", "validate", "profile")
JobKind = Literal["bench", "validate", "profile"]
MAX_SAMPLES = 1000  # validation samples a device runs (the CLI keeps a bounded subset)
MAX_DATA_BYTES = 64 << 20  # the validation data target
MAX_OUTPUT_BYTES = 640 << 10  # one variant's outputs as sent (base64 of it fits the 1 MiB JSON limit)
MAX_OPS = 2000  # profile rows per variant


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


class DeviceGates(_Strict):
    """The gates of ``liteship validate`` applied to each device's figures (a validation job)."""

    min_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    max_accuracy_drop: float | None = Field(default=None, ge=0.0, le=100.0)
    min_sqnr: float | None = Field(default=None, ge=-1000.0, le=1000.0)
    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    atol: float | None = Field(default=None, ge=0.0, le=1e9)
    rtol: float | None = Field(default=None, ge=0.0, le=1e9)


class BenchJobCreate(_Strict):
    """Queue a job: variants already uploaded (``POST /api/v1/bench/variants``), and which devices.

    Exactly one of ``devices``, ``group``, ``profile`` and ``tags`` chooses the devices (``tags``: the
    devices carrying all of them, as a rollout's ``tags`` do: :func:`liteship.fleet.checkin.carries_all`). A ``validate`` job also
    names its validation inputs (``data``: an uploaded ``.npz`` with ``x``, a signed target the devices
    fetch) and the workstation's reference outputs (``reference``: the sha256 of an uploaded ``.npz``
    that stays on the server, see :mod:`liteship.fleet.jobs_validate`).
    """

    kind: JobKind = "bench"
    data: VariantRef | None = None
    reference: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    gates: DeviceGates | None = None

    variants: list[VariantRef] = Field(min_length=1, max_length=MAX_VARIANTS)
    devices: list[str] | None = Field(default=None, min_length=1, max_length=MAX_DEVICES)
    group: str | None = Field(default=None, max_length=200)
    profile: dict[str, str] | None = Field(default=None, min_length=1, max_length=16)
    tags: list[Tag] | None = Field(default=None, min_length=1, max_length=MAX_TAGS)
    runs: int = Field(default=50, ge=1, le=10_000)
    warmup: int = Field(default=5, ge=0, le=1_000)
    min_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    threads: int | None = Field(default=None, ge=1, le=64)  # None: the agent's own thread count


class BenchOffer(BaseModel):
    """What a device is told at check-in (``Assignment.jobs``): the job to run and its TUF targets.

    ``kind`` is absent for a bench job (agents older than validation jobs know no other kind).
    """

    model_config = ConfigDict(extra="ignore")
    job_id: str
    variants: list[dict[str, Any]]  # name, target_path, sha256, size
    runs: int
    warmup: int
    min_seconds: float
    threads: int | None = None
    kind: JobKind | None = None
    data: dict[str, Any] | None = None  # validate: the inputs' target (name, target_path, sha256, size)


class OutputArray(_Strict):
    """One output of one variant over every validation sample, as the device computed it."""

    name: str = Field(max_length=200)
    shape: list[int] = Field(min_length=1, max_length=8)
    dtype: Literal["float32", "int8", "uint8", "int16", "int32"]
    data: str = Field(max_length=(MAX_OUTPUT_BYTES * 4) // 3 + 8)  # base64 of the C-order bytes


class ValidationOutputs(_Strict):
    """A device's outputs of one variant of a validation job (``POST …/bench/{job}/outputs``)."""

    name: str = Field(pattern=VARIANT_NAME_PATTERN)
    samples: int = Field(ge=1, le=MAX_SAMPLES)
    outputs: list[OutputArray] = Field(min_length=1, max_length=16)
    accelerator: str | None = Field(default=None, max_length=200)
    backend: str | None = Field(default=None, max_length=200)
    fallback: str | None = Field(default=None, max_length=1000)


class OpRow(BaseModel):
    """One op of a profile: its position, type, where it ran and its median time."""

    model_config = ConfigDict(extra="ignore")
    index: int = Field(ge=0, le=1_000_000)
    op: str = Field(max_length=100)
    ran_on: str = Field(max_length=50)
    ms: float = Field(ge=0, le=3.6e6)


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
    # validate and profile jobs
    samples: int | None = Field(default=None, ge=0, le=MAX_SAMPLES)
    accelerator: str | None = Field(default=None, max_length=200)
    fallback: str | None = Field(default=None, max_length=1000)
    load_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    invoke_ms: float | None = Field(default=None, ge=0, le=3.6e6)  # profile: the whole model, median
    ops_total_ms: float | None = Field(default=None, ge=0, le=3.6e6)
    ops: list[OpRow] | None = Field(default=None, max_length=MAX_OPS)
    delegated_nodes: int | None = Field(default=None, ge=0, le=1_000_000)


class DeviceBenchReport(_Strict):
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
    kind: str = "bench"
    groups: list[dict[str, Any]] | None = None  # validate: figures and gate verdict per hardware group


__all__ = [
    "BenchJob",
    "BenchTask",
    "BenchJobCreate",
    "BenchOffer",
    "DeviceBenchReport",
    "DeviceGates",
    "OutputArray",
    "ValidationOutputs",
    "OpRow",
    "BenchJobPublic",
    "TaskPublic",
    "VariantFigures",
    "VariantRef",
    "ID_PATTERN",
]
