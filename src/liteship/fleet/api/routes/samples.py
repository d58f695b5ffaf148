"""Field capture: capture policies (admin), sample uploads (a device, its own only), the gallery's data,
labels and the export (admin), and the policies' TUF targets (no token: TUF signatures protect them).
See :mod:`liteship.fleet.samples`."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi import Path as FastPath
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from liteship.errors import Conflict, NotFound, OverQuota, SampleRefused
from liteship.fleet import samples
from liteship.fleet.api.deps import AdminAuth, DeviceAuth, SessionDep, own_device
from liteship.fleet.api.routes.distribution import serve_blob
from liteship.fleet.api.routes.releases import all_targets
from liteship.fleet.models import ID_PATTERN, MAX_DB_ID, Assignment
from liteship.fleet.samples import (
    MAX_SAMPLE_BYTES,
    SAMPLE_ID_PATTERN,
    TARGET_PREFIX,
    CapturePolicyCreate,
    CapturePolicyPublic,
    SampleLabel,
    SamplePublic,
)

router = APIRouter(tags=["samples"])
SampleRowId = Annotated[int, FastPath(ge=1, le=MAX_DB_ID, description="a sample's row id")]
UPLOAD_PATTERN = re.compile(r"^/api/v1/devices/[^/]+/samples/[^/]+$")  # exempt from the JSON body limit


def is_upload(scope: Any) -> bool:
    """True for a sample upload (its own limit, :data:`MAX_SAMPLE_BYTES`, applies while it streams)."""
    return scope.get("method") == "PUT" and UPLOAD_PATTERN.match(scope.get("path", "")) is not None


# ---- policies ---------------------------------------------------------------------------------------


def _resign(app: Any, session: Any) -> bool:
    signed = app.state.tuf.update_targets(all_targets(session))
    app.state.capture_offers.invalidate()
    return bool(signed)


def start_capture(app: Any, model_id: str, body: CapturePolicyCreate) -> CapturePolicyPublic:
    with app.state.sessionmaker() as session:
        row = samples.create_policy(session, model_id=model_id, body=body, put_file=app.state.store.put_file)
        row.tuf = "signed" if _resign(app, session) else "pending-offline-signature"
        session.commit()
        return CapturePolicyPublic.model_validate(row)


@router.put("/api/v1/models/{model_id}/capture", response_model=CapturePolicyPublic)
async def capture_on(
    model_id: str, body: CapturePolicyCreate, request: Request, _: AdminAuth
) -> CapturePolicyPublic:
    """Turn field capture on for a model (or a cohort): a signed policy offered at every check-in."""
    if not re.match(ID_PATTERN, model_id):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "not a model id.")
    return await run_in_threadpool(start_capture, request.app, model_id, body)


def _capture_off(app: Any, model_id: str) -> dict[str, Any]:
    with app.state.sessionmaker() as session:
        n = samples.end_policy(session, model_id=model_id)
        _resign(app, session)
        session.commit()
    return {"model_id": model_id, "ended": n}


@router.delete("/api/v1/models/{model_id}/capture")
async def capture_off(model_id: str, request: Request, _: AdminAuth) -> dict[str, Any]:
    """Turn field capture off for a model: devices stop capturing at their next check-in."""
    return await run_in_threadpool(_capture_off, request.app, model_id)


@router.get("/api/v1/models/{model_id}/capture")
def capture_status(model_id: str, session: SessionDep, _: AdminAuth) -> dict[str, Any]:
    """The active policy of a model (or null) and its samples so far."""
    row = samples.active_policy(session, model_id=model_id)
    counts = samples.sample_counts(session, model_id=model_id)
    return {
        "model_id": model_id,
        "policy": CapturePolicyPublic.model_validate(row).model_dump() if row is not None else None,
        **counts,
    }


@router.api_route(f"/tuf/targets/{TARGET_PREFIX}/{{model_id}}/{{name}}", methods=["GET", "HEAD"])
def policy_target(model_id: str, name: str, request: Request, session: SessionDep) -> Response:
    """A policy's TUF target, ``capture/<model>/[<sha256>.]policy.json``."""
    sha, _, bare = name.partition(".") if re.match(r"^[0-9a-f]{64}\.", name) else ("", "", name)
    if not re.match(ID_PATTERN, model_id) or bare != "policy.json":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a capture target capture/<model>/policy.json.")
    blob = samples.policy_blob(session, model_id=model_id, sha256=sha or None)
    if blob is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no target {TARGET_PREFIX}/{model_id}/{name[:100]}.")
    return serve_blob(request, blob, bare)


# ---- the check-in hook ------------------------------------------------------------------------------


def _refresh_offers(app: Any) -> None:
    cache: samples.CaptureOffers = app.state.capture_offers
    with app.state.sessionmaker() as session:
        targets = app.state.tuf.current_targets().targets
        signed = lambda path, sha: path in targets and targets[path].hashes.get("sha256") == sha  # noqa: E731
        cache.refresh(session, signed)


async def attach_capture(request: Request, assignment: Assignment) -> Assignment:
    """Add the model's signed capture policy to a device's assignment (a cached lookup per worker)."""
    cache: samples.CaptureOffers = request.app.state.capture_offers
    if cache.stale():
        await run_in_threadpool(_refresh_offers, request.app)
    offer = cache.offer(assignment.model_id, assignment.device_id)
    return assignment.model_copy(update={"capture": offer}) if offer else assignment


# ---- uploads ----------------------------------------------------------------------------------------


async def _spool(request: Request) -> Path:
    settings = request.app.state.settings
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".npz")
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_SAMPLE_BYTES:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE, f"a sample is at most {MAX_SAMPLE_BYTES} bytes."
                    )
                f.write(chunk)
        if size == 0:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "empty body: send the sample file as the body.")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _receive(app: Any, device_id: str, sample_id: str, path: Path) -> dict[str, Any]:
    with app.state.sessionmaker() as session:
        device = session.get(samples.Device, device_id)
        if device is None:
            raise NotFound(f"device {device_id!r} is not registered.")
        try:
            row, duplicate = samples.receive_sample(
                session, device=device, sample_id=sample_id, path=path, put_file=app.state.store.put_file
            )
        except Conflict:
            session.commit()  # the refusal is counted on the device
            raise
        session.commit()
        return {"sample_id": sample_id, "id": row.id, "duplicate": duplicate}


@router.put("/api/v1/devices/{device_id}/samples/{sample_id}")
async def upload_sample(device_id: str, sample_id: str, request: Request, device: DeviceAuth) -> Response:
    """A device uploads one captured sample (idempotent by id; see :mod:`liteship.fleet.samples`)."""
    own_device(device_id, device)
    if not re.match(SAMPLE_ID_PATTERN, sample_id):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a sample id is 1-64 of [A-Za-z0-9_-].")
    path = await _spool(request)
    try:
        out = await run_in_threadpool(_receive, request.app, device.id, sample_id, path)
    except OverQuota as e:
        return JSONResponse(
            {"detail": str(e)},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(e.retry_after)},
        )
    except SampleRefused as e:
        return JSONResponse({"detail": str(e)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse(out, status_code=status.HTTP_200_OK if out["duplicate"] else status.HTTP_201_CREATED)


# ---- admin: gallery data, labels, export ------------------------------------------------------------


@router.get("/api/v1/samples", response_model=list[SamplePublic])
def list_samples(
    session: SessionDep,
    _: AdminAuth,
    model_id: str | None = Query(default=None, pattern=ID_PATTERN),
    version: str | None = Query(default=None, max_length=64),
    trigger: str | None = Query(default=None, max_length=32),
    since: float | None = Query(default=None, ge=0, le=4102444800.0),
    labeled: bool | None = None,
    discarded: bool | None = False,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[SamplePublic]:
    """Field samples, newest first (not the discarded ones unless ``discarded`` is given)."""
    rows = samples.list_samples(
        session,
        model_id=model_id,
        version=version,
        trigger=trigger,
        since=since,
        labeled=labeled,
        discarded=discarded,
        limit=limit,
    )
    return [SamplePublic.model_validate(r) for r in rows]


@router.get("/api/v1/samples/{sample}/file")
def sample_file(sample: SampleRowId, request: Request, session: SessionDep, _: AdminAuth) -> Response:
    """The sample file as the device sent it."""
    row = session.get(samples.FieldSample, sample)
    if row is None:
        raise NotFound(f"no sample {sample}.")
    return serve_blob(request, row.sha256, f"{row.sample_id}.npz")


@router.post("/api/v1/samples/{sample}/label", response_model=SamplePublic)
def label_sample(sample: SampleRowId, body: SampleLabel, session: SessionDep, _: AdminAuth) -> SamplePublic:
    """Label a sample with a class index (null clears it) and/or discard it."""
    row = samples.set_label(session, sample=sample, body=body)
    session.commit()
    return SamplePublic.model_validate(row)


@router.delete("/api/v1/models/{model_id}/samples")
def purge_samples(
    model_id: str,
    request: Request,
    session: SessionDep,
    _: AdminAuth,
    before: float = Query(ge=0, le=4102444800.0, description="delete samples received before this time"),
) -> dict[str, Any]:
    """Delete a model's samples received before ``before`` (epoch seconds): rows and files."""
    n = samples.purge(session, request.app.state.store, model_id=model_id, before=before)
    session.commit()
    return {"model_id": model_id, "deleted": n}


def _export(
    app: Any, model_id: str, since: float | None, version: str | None, labeled_only: bool
) -> Response:
    with app.state.sessionmaker() as session:
        data, summary = samples.export_npz(
            session,
            app.state.store,
            model_id=model_id,
            since=since,
            version=version,
            labeled_only=labeled_only,
        )
    headers = {
        "Content-Disposition": f'attachment; filename="{model_id}-field.npz"',
        "X-Liteship-Export": samples.summary_header(summary),
    }
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get("/api/v1/models/{model_id}/samples/export")
async def export(
    model_id: str,
    request: Request,
    _: AdminAuth,
    since: float | None = Query(default=None, ge=0, le=4102444800.0),
    version: str | None = Query(default=None, max_length=64),
    labeled_only: bool = False,
) -> Response:
    """The model's samples as a ``.npz`` the pipeline reads (``x`` raw, ``y`` when all are labeled)."""
    return await run_in_threadpool(_export, request.app, model_id, since, version, labeled_only)


__all__ = ["router", "attach_capture", "is_upload"]
