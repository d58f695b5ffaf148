"""Bench jobs on the server: choose devices by id, hardware group, profile or tags; queue; offer; keep results.

A job's variants are TUF targets ``bench-jobs/<job id>/<name>``, signed into the fleet's targets
metadata with the releases (:func:`job_targets` is added to the release targets on every re-sign), so
the agent verifies them with the pinned root, exactly like a model's target. With the targets key
offline the job waits for the offline signature (``tuf: pending-offline-signature``) and no device is
offered it before its targets are signed.

Devices learn about their tasks at check-in (``Assignment.jobs``). Which devices have an open task is
cached per API worker for :data:`OPEN_TASKS_TTL_S`, so a check-in of a device without a task costs no
query; a new job reaches a device at most that much later.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liteship.errors import FleetError, NotFound
from liteship.fleet import cohorts
from liteship.fleet.crud import profile_matches
from liteship.fleet.jobs_models import (
    MAX_DATA_BYTES,
    TARGET_PREFIX,
    TASK_DONE,
    TASK_OPEN,
    BenchJob,
    BenchJobCreate,
    BenchJobPublic,
    BenchOffer,
    BenchTask,
    DeviceBenchReport,
    TaskPublic,
)
from liteship.fleet.jobs_validate import group_figures, merge_validation
from liteship.fleet.models import Device

OPEN_TASKS_TTL_S = 1.0
# ISA features that change which XNNPACK kernels run (int8 dot products, wide vectors)
GROUP_ISA = ("neon", "dotprod", "i8mm", "sve", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


# ---- profiles: group and match (the device profile is the check-in ``runtime``) -------------------


def profile_of(device: Device, reported: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The hardware profile a device reported at check-in (``Device.runtime``), else the one it sent with
    its last bench report (``reported``: see :func:`reported_profiles`), else ``{}``."""
    if isinstance(device.runtime, dict) and device.runtime:
        return device.runtime
    return (reported or {}).get(device.id, {})


def reported_profiles(session: Session) -> dict[str, dict[str, Any]]:
    """Each device's profile from its latest bench report that carried one."""
    rows = session.execute(
        select(BenchTask.device_id, BenchTask.profile)
        .where(BenchTask.profile.is_not(None))
        .order_by(BenchTask.updated_at)
    )
    return {device_id: profile for device_id, profile in rows if isinstance(profile, dict)}


def profile_group(profile: dict[str, Any]) -> str:
    """The hardware group of a profile: machine plus the ISA features XNNPACK cares about.

    Example: ``x86_64+avx2`` or ``aarch64+neon+dotprod``; ``unknown`` without a machine.
    """
    machine = str(profile.get("machine") or "unknown")[:50]
    isa = profile.get("isa")
    isa = isa if isinstance(isa, list) else []
    features = [f for f in GROUP_ISA if f in isa]
    return "+".join([machine, *features])


def resolve_devices(session: Session, body: BenchJobCreate) -> tuple[list[str], dict[str, Any]]:
    """The device ids a job is for, and the selector as given.

    Raises:
        FleetError: Not exactly one of devices / group / profile / tags.
        NotFound: A listed device is not registered, or nothing matches (the message names the selector).
    """
    given = [k for k in ("devices", "group", "profile", "tags") if getattr(body, k) is not None]
    if len(given) != 1:
        raise FleetError(
            f"choose the devices in exactly one way (devices, group, profile or tags); got {given or 'none'}.",
            hint="For example devices=['dev-1'], profile={'machine': 'aarch64'} or tags=['site=berlin'].",
        )
    if body.tags is not None:
        wanted = list(dict.fromkeys(body.tags))
        ids = cohorts.devices_tagged(session, wanted)
        if not ids:
            now = cohorts.known_tags(session)
            shown = ", ".join(now[:20]) + (f" … ({len(now) - 20} more)" if len(now) > 20 else "")
            raise NotFound(
                f"no registered device carries all the tags {', '.join(wanted)}.",
                hint=f"Tags now: {shown or 'none'}. Tag devices with `liteship fleet tag` "
                "(or `liteship agent enroll --tag`); a job takes the devices carrying every tag given.",
            )
        return ids, {"tags": wanted}
    if body.devices is not None:
        ids = list(dict.fromkeys(body.devices))
        known = set(session.scalars(select(Device.id).where(Device.id.in_(ids))))
        missing = [d for d in ids if d not in known]
        if missing:
            raise NotFound(f"no device {missing[0]!r}.", hint="List devices with `liteship fleet devices`.")
        return ids, {"devices": ids}
    everyone = list(session.scalars(select(Device).order_by(Device.id)))
    reported = reported_profiles(session)
    if body.group is not None:
        ids = [d.id for d in everyone if profile_group(profile_of(d, reported)) == body.group]
        selector: dict[str, Any] = {"group": body.group}
    else:
        assert body.profile is not None
        ids = [d.id for d in everyone if profile_matches(profile_of(d, reported), body.profile)]
        selector = {"profile": body.profile}
    if not ids:
        groups = sorted({profile_group(profile_of(d, reported)) for d in everyone})
        raise NotFound(
            f"no registered device matches {selector}.",
            hint=f"Groups now: {', '.join(groups) or 'none (no device has checked in with a profile)'}.",
        )
    return ids, selector


# ---- jobs ------------------------------------------------------------------------------------------


def new_job_id() -> str:
    return f"job-{secrets.token_hex(8)}"


def target_path(job_id: str, name: str) -> str:
    return f"{TARGET_PREFIX}/{job_id}/{name}"


def create_job(
    session: Session, *, body: BenchJobCreate, blob_size: Callable[[str], int | None]
) -> tuple[BenchJob, list[str]]:
    """Record a job and one queued task per device (the caller signs the targets, then commits).

    Raises:
        FleetError: Duplicate variant names, a variant not uploaded, or a bad device selector.
    """
    names = [v.name for v in body.variants]
    if len(set(names)) != len(names):
        raise FleetError(f"variant names must be unique, got {names}.", hint="Rename the files.")
    devices, selector = resolve_devices(session, body)
    job_id = new_job_id()
    variants = []
    for v in body.variants:
        size = blob_size(v.sha256)
        if size is None:
            raise NotFound(
                f"variant {v.name!r} ({v.sha256[:12]}…) was not uploaded.",
                hint="POST its bytes to /api/v1/bench/variants first (`liteship fleet bench` does).",
            )
        variants.append(
            {"name": v.name, "sha256": v.sha256, "size": size, "target_path": target_path(job_id, v.name)}
        )
    settings: dict[str, Any] = {
        "runs": body.runs,
        "warmup": body.warmup,
        "min_seconds": body.min_seconds,
        "threads": body.threads,
    }
    if body.kind != "bench":
        settings["kind"] = body.kind
    if body.kind == "validate":
        settings.update(_validation_inputs(body, job_id, names, blob_size))
    elif body.data is not None or body.reference is not None or body.gates is not None:
        raise FleetError(f"data, reference and gates belong to a validate job, not to a {body.kind} job.")
    job = BenchJob(id=job_id, variants=variants, settings=settings, selector=selector, tuf="signed")
    session.add(job)
    session.flush()
    for device_id in devices:
        session.add(BenchTask(job_id=job_id, device_id=device_id))
    session.flush()
    return job, devices


def _validation_inputs(
    body: BenchJobCreate, job_id: str, names: list[str], blob_size: Callable[[str], int | None]
) -> dict[str, Any]:
    """A validate job's data target (signed, fetched by devices), reference blob (server only), gates."""
    if body.data is None or body.reference is None:
        raise FleetError(
            "a validate job needs its validation inputs (data) and the workstation's reference outputs "
            "(reference).",
            hint="`liteship fleet validate VARIANT… --data VAL.npz` prepares and uploads both.",
        )
    if body.data.name in names:
        raise FleetError(f"the data's name {body.data.name!r} is also a variant's name.", hint="Rename one.")
    size = blob_size(body.data.sha256)
    if size is None or blob_size(body.reference) is None:
        raise NotFound(
            "the validation data or the reference outputs were not uploaded.",
            hint="POST them to /api/v1/bench/variants first (`liteship fleet validate` does).",
        )
    if size > MAX_DATA_BYTES:
        raise FleetError(
            f"the validation data is {size} bytes, over the {MAX_DATA_BYTES >> 20} MiB a device fetches.",
            hint="Validate on fewer samples (--limit).",
        )
    data = {
        "name": body.data.name,
        "sha256": body.data.sha256,
        "size": size,
        "target_path": target_path(job_id, body.data.name),
    }
    gates = body.gates.model_dump(exclude_none=True) if body.gates is not None else {}
    return {"data": data, "reference": body.reference, "gates": gates}


def job_kind(job: BenchJob) -> str:
    return str(job.settings.get("kind") or "bench")


def _targets(job: BenchJob) -> list[dict[str, Any]]:
    """Every TUF target of a job: its variants, and a validate job's data."""
    data = job.settings.get("data")
    return [*job.variants, *([data] if isinstance(data, dict) else [])]


def job_targets(session: Session) -> dict[str, tuple[str, int]]:
    """TUF targets of the jobs that still have an open task (``path → (sha256, size)``)."""
    open_jobs = select(BenchTask.job_id).where(BenchTask.state.in_(TASK_OPEN)).distinct()
    out: dict[str, tuple[str, int]] = {}
    for job in session.scalars(select(BenchJob).where(BenchJob.id.in_(open_jobs))):
        for v in _targets(job):
            out[v["target_path"]] = (v["sha256"], v["size"])
    return out


def variant_blob(session: Session, *, job_id: str, name: str) -> str | None:
    """The sha256 of a job's variant (to serve its TUF target), or None."""
    job = session.get(BenchJob, job_id)
    if job is None:
        return None
    return next((v["sha256"] for v in _targets(job) if v["name"] == name), None)


def offers_for(
    session: Session, *, device_id: str, is_signed: Callable[[str, str], bool]
) -> list[BenchOffer]:
    """The open tasks of a device as offers, oldest first; only jobs whose targets are signed."""
    rows = session.execute(
        select(BenchJob)
        .join(BenchTask, BenchTask.job_id == BenchJob.id)
        .where(BenchTask.device_id == device_id, BenchTask.state.in_(TASK_OPEN))
        .order_by(BenchJob.created_at)
    ).scalars()
    offers = []
    for job in rows:
        if not all(is_signed(v["target_path"], v["sha256"]) for v in _targets(job)):
            continue
        keys = ("name", "target_path", "sha256", "size")
        variants = [{k: v[k] for k in keys} for v in job.variants]
        settings: dict[str, Any] = {
            k: job.settings.get(k) for k in ("runs", "warmup", "min_seconds", "threads")
        }
        data = job.settings.get("data")
        kind = job_kind(job)
        offers.append(
            BenchOffer(
                job_id=job.id,
                variants=variants,
                **settings,
                kind=None if kind == "bench" else kind,  # type: ignore[arg-type]
                data={k: data[k] for k in keys} if isinstance(data, dict) else None,
            )
        )
    return offers


def record_report(session: Session, *, job_id: str, device_id: str, report: DeviceBenchReport) -> BenchTask:
    """Store a device's report on its task. A finished task keeps its first final report.

    Raises:
        NotFound: The device has no task in this job.
    """
    task = session.scalars(
        select(BenchTask).where(BenchTask.job_id == job_id, BenchTask.device_id == device_id)
    ).first()
    if task is None:
        raise NotFound(f"device {device_id!r} has no task in job {job_id!r}.")
    if task.state in TASK_DONE:
        return task
    task.state = report.state
    task.error = _text(report.error)
    if report.results:
        results = [{**r.model_dump(), "error": _text(r.error)} for r in report.results]
        task.results = merge_validation(task.results, results) if report.state in TASK_DONE else results
    if report.profile is not None:
        task.profile = _bounded_profile(report.profile)
    if report.mode is not None:
        task.mode = {
            _text(str(k)[:50]) or "?": _text(v) if isinstance(v, str) else v
            for k, v in list(report.mode.items())[:10]
            if _scalar(v)
        }
    task.updated_at = time.time()
    return task


def _text(value: str | None) -> str | None:
    """Text as every database stores it (PostgreSQL refuses NUL characters)."""
    return value.replace("\x00", "") if value is not None else None


def _scalar(v: Any) -> bool:
    """A JSON scalar every database stores: bounded text, finite numbers (PostgreSQL refuses NaN)."""
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, (int, bool)) or (isinstance(v, str) and len(v) <= 200) or v is None


def _bounded_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile with strings ≤ 200 chars, lists ≤ 32 short strings, at most 32 fields."""
    out: dict[str, Any] = {}
    for k, v in list(profile.items())[:32]:
        key = _text(str(k)[:50]) or "?"
        if isinstance(v, list):
            out[key] = [_text(str(x)[:50]) for x in v[:32]]
        elif _scalar(v) and not (isinstance(v, int) and abs(v) > 1 << 53):
            out[key] = _text(v) if isinstance(v, str) else v
    return out


def job_public(session: Session, *, job_id: str) -> BenchJobPublic:
    job = session.get(BenchJob, job_id)
    if job is None:
        raise NotFound(f"no bench job {job_id!r}.", hint="Jobs are listed by `liteship fleet bench list`.")
    tasks = list(
        session.scalars(select(BenchTask).where(BenchTask.job_id == job_id).order_by(BenchTask.device_id))
    )
    state = "open" if any(t.state in TASK_OPEN for t in tasks) else "complete"
    kind = job_kind(job)
    public = [TaskPublic.model_validate(t) for t in tasks]
    return BenchJobPublic(
        kind=kind,
        groups=group_figures(public, job.variants, _groups(session, tasks)) if kind == "validate" else None,
        id=job.id,
        created_at=job.created_at,
        variants=job.variants,
        settings=job.settings,
        selector=job.selector,
        tuf=job.tuf,
        tasks=public,
        state=state,
    )


def _groups(session: Session, tasks: list[BenchTask]) -> dict[str, str]:
    """Each task's device's hardware group: its check-in profile, else the one its report carried."""
    ids = [t.device_id for t in tasks]
    devices = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(ids)))}
    out = {}
    for t in tasks:
        d = devices.get(t.device_id)
        runtime = d.runtime if d is not None and isinstance(d.runtime, dict) and d.runtime else None
        out[t.device_id] = profile_group(runtime or t.profile or {})
    return out


def list_jobs(session: Session, *, limit: int = 50) -> list[BenchJobPublic]:
    ids = session.scalars(select(BenchJob.id).order_by(BenchJob.created_at.desc()).limit(limit))
    return [job_public(session, job_id=i) for i in ids]


class OpenTasks:
    """Per-worker cache of the devices that have an open task (refreshed after ``ttl`` seconds)."""

    def __init__(self, ttl: float = OPEN_TASKS_TTL_S) -> None:
        self.ttl = ttl
        self._devices: frozenset[str] = frozenset()
        self._at = float("-inf")
        self._lock = threading.Lock()

    def stale(self) -> bool:
        return time.monotonic() - self._at > self.ttl

    def refresh(self, session: Session) -> None:
        with self._lock:
            rows = session.scalars(
                select(BenchTask.device_id).where(BenchTask.state.in_(TASK_OPEN)).distinct()
            )
            self._devices, self._at = frozenset(rows), time.monotonic()

    def invalidate(self) -> None:
        self._at = float("-inf")

    def __contains__(self, device_id: str) -> bool:
        return device_id in self._devices


__all__ = [
    "OpenTasks",
    "create_job",
    "job_public",
    "job_targets",
    "list_jobs",
    "offers_for",
    "profile_group",
    "profile_matches",
    "record_report",
    "resolve_devices",
]
