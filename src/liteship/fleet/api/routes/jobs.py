"""Bench jobs: upload variants and queue a job (admin), results (admin; a device only its own), the
device's report, and the variants' TUF targets (no token: TUF signatures protect them)."""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from liteship.errors import FleetError, NotFound
from liteship.fleet import jobs, jobs_validate
from liteship.fleet.api.deps import AdminAuth, DeviceAuth, SessionDep, own_device, spooled_body
from liteship.fleet.api.routes.distribution import serve_blob
from liteship.fleet.api.routes.releases import all_targets
from liteship.fleet.jobs_models import (
    JOB_ID_PATTERN,
    MAX_DATA_BYTES,
    TARGET_PREFIX,
    TASK_OPEN,
    VARIANT_NAME_PATTERN,
    BenchJob,
    BenchJobCreate,
    BenchJobPublic,
    BenchTask,
    DeviceBenchReport,
    TaskPublic,
    ValidationOutputs,
)
from liteship.fleet.models import Assignment

router = APIRouter(tags=["bench"])
UPLOAD_PATH = "/api/v1/bench/variants"
MAX_OFFERS = 4  # jobs offered per check-in (a device runs them one after another)


@router.post(UPLOAD_PATH, status_code=status.HTTP_201_CREATED)
async def upload_variant(request: Request, _: AdminAuth) -> dict[str, Any]:
    """Store a ``.tflite`` variant sent as the raw body; returns its ``sha256`` and ``size``."""
    async with spooled_body(
        request, suffix=".tflite", what="variant", empty="empty body: send the .tflite file as the body."
    ) as path:
        sha, size = await run_in_threadpool(request.app.state.store.put_file, path)
    return {"sha256": sha, "size": size}


def _queue(app: Any, body: BenchJobCreate) -> BenchJobPublic:
    with app.state.sessionmaker() as session:
        job, _ = jobs.create_job(session, body=body, blob_size=app.state.store.size)
        signed = app.state.tuf.update_targets(all_targets(session))
        job.tuf = "signed" if signed else "pending-offline-signature"
        session.commit()
        app.state.open_bench_tasks.invalidate()
        return jobs.job_public(session, job_id=job.id)


@router.post("/api/v1/bench/jobs", response_model=BenchJobPublic, status_code=status.HTTP_201_CREATED)
async def queue_job(body: BenchJobCreate, request: Request, _: AdminAuth) -> BenchJobPublic:
    """Queue a bench job on the chosen devices; its variants become signed TUF targets."""
    return await run_in_threadpool(_queue, request.app, body)


@router.get("/api/v1/bench/jobs", response_model=list[BenchJobPublic])
def list_jobs(
    session: SessionDep, _: AdminAuth, limit: int = Query(default=50, ge=1, le=500)
) -> list[BenchJobPublic]:
    """Bench jobs, newest first, with every device's state and figures."""
    return jobs.list_jobs(session, limit=limit)


@router.get("/api/v1/bench/preflight")
def preflight(
    session: SessionDep,
    _: AdminAuth,
    model_id: str = Query(max_length=128),
    version: str = Query(max_length=64),
) -> dict[str, Any]:
    """Which devices of a model cannot load a release's model, from their device jobs (see
    :mod:`liteship.fleet.preflight`)."""
    from liteship.fleet.preflight import preflight as check

    return check(session, model_id=model_id, version=version)


@router.get("/api/v1/bench/jobs/{job_id}", response_model=BenchJobPublic)
def get_job(job_id: str, session: SessionDep, _: AdminAuth) -> BenchJobPublic:
    """One job: every device's state, figures and profile."""
    return jobs.job_public(session, job_id=job_id)


@router.post("/api/v1/devices/{device_id}/bench/{job_id}", response_model=TaskPublic)
def report(
    device_id: str, job_id: str, body: DeviceBenchReport, session: SessionDep, device: DeviceAuth
) -> TaskPublic:
    """A device reports on its task: started, figures, a failure or a refusal (own device only)."""
    own_device(device_id, device)
    task = jobs.record_report(session, job_id=job_id, device_id=device.id, report=body)
    session.commit()
    return TaskPublic.model_validate(task)


def _read_blob(store: Any) -> Any:
    def read(sha256: str, limit: int) -> bytes:
        size = store.size(sha256)
        if size is None:
            raise NotFound(f"stored blob {sha256[:12]}… is gone.")
        if size > limit:
            raise FleetError(f"stored blob {sha256[:12]}… is {size} bytes, over {limit}.")
        return b"".join(store.open_range(sha256, 0, size - 1)) if size else b""

    return read


@router.post("/api/v1/devices/{device_id}/bench/{job_id}/outputs", response_model=TaskPublic)
def validation_outputs(
    device_id: str,
    job_id: str,
    body: ValidationOutputs,
    request: Request,
    session: SessionDep,
    device: DeviceAuth,
) -> TaskPublic:
    """A device's outputs of one variant of a validation job (own device, own open task only): the
    server compares them with the reference outputs and keeps the figures, not the outputs."""
    own_device(device_id, device)
    job = session.get(BenchJob, job_id) if re.match(JOB_ID_PATTERN, job_id) else None
    task = session.scalars(
        select(BenchTask).where(BenchTask.job_id == job_id, BenchTask.device_id == device.id)
    ).first()
    if job is None or task is None:
        raise NotFound(f"device {device.id!r} has no task in job {job_id[:100]!r}.")
    if jobs.job_kind(job) != "validate" or task.state not in TASK_OPEN:
        raise FleetError(
            f"job {job_id} takes no outputs now (a {jobs.job_kind(job)} job, task {task.state})."
        )
    variant = next((v for v in job.variants if v["name"] == body.name), None)
    if variant is None:
        raise NotFound(f"job {job_id} has no variant {body.name!r}.")
    read = _read_blob(request.app.state.store)
    x = jobs_validate.read_npz(read, job.settings["data"]["sha256"], MAX_DATA_BYTES)["x"]
    reference = jobs_validate.read_npz(read, job.settings["reference"], jobs_validate.MAX_REFERENCE_BYTES)
    try:
        fig = jobs_validate.figures(
            variant=body.name,
            device_id=device.id,
            body=body,
            x=x,
            reference=reference,
            gates=job.settings.get("gates") or {},
            model_bytes=read(variant["sha256"], 512 << 20),
        )
    except (KeyError, TypeError, ValueError) as e:  # a reference file that does not fit: the job's fault
        raise FleetError(f"cannot compare the outputs of {body.name!r}: {type(e).__name__}: {e}") from e
    task.results = jobs_validate.store_figures(task.results, body.name, fig)
    task.updated_at = time.time()
    session.commit()
    return TaskPublic.model_validate(task)


@router.get("/api/v1/devices/{device_id}/bench", response_model=list[TaskPublic])
def own_results(device_id: str, session: SessionDep, device: DeviceAuth) -> list[TaskPublic]:
    """A device's own tasks and figures (a device cannot read another's)."""
    own_device(device_id, device)
    rows = session.scalars(select(BenchTask).where(BenchTask.device_id == device.id).order_by(BenchTask.id))
    return [TaskPublic.model_validate(t) for t in rows]


@router.api_route(f"/tuf/targets/{TARGET_PREFIX}/{{job_id}}/{{name}}", methods=["GET", "HEAD"])
def variant_target(job_id: str, name: str, request: Request, session: SessionDep) -> Response:
    """A variant's TUF target, ``bench-jobs/<job>/[<sha256>.]<name>``."""
    sha, _, bare = name.partition(".") if re.match(r"^[0-9a-f]{64}\.", name) else ("", "", name)
    if not re.match(JOB_ID_PATTERN, job_id) or not re.match(VARIANT_NAME_PATTERN, bare):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a bench target path bench-jobs/<job>/<name>.")
    blob = jobs.variant_blob(session, job_id=job_id, name=bare)
    if blob is None or (sha and sha != blob):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no target {TARGET_PREFIX}/{job_id}/{name[:100]}.")
    return serve_blob(request, blob, bare)


def _offers(app: Any, device_id: str) -> list[dict[str, Any]]:
    cache: jobs.OpenTasks = app.state.open_bench_tasks
    with app.state.sessionmaker() as session:
        if cache.stale():
            cache.refresh(session)
        if device_id not in cache:
            return []
        targets = app.state.tuf.current_targets().targets
        signed = lambda path, sha: path in targets and targets[path].hashes.get("sha256") == sha  # noqa: E731
        offers = jobs.offers_for(session, device_id=device_id, is_signed=signed)
    return [o.model_dump() for o in offers[:MAX_OFFERS]]


async def attach_offers(request: Request, assignment: Assignment) -> Assignment:
    """The check-in hook: add the device's open bench jobs to its assignment (no query when it has none)."""
    app = request.app
    cache: jobs.OpenTasks = app.state.open_bench_tasks
    if not cache.stale() and assignment.device_id not in cache:
        return assignment
    offers = await run_in_threadpool(_offers, app, assignment.device_id)
    return assignment.model_copy(update={"jobs": offers}) if offers else assignment


__all__ = ["router", "attach_offers", "UPLOAD_PATH"]
