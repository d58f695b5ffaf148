"""Telemetry windows (device, own id only, idempotent by window id) and drift (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status

from liteship.errors import Conflict
from liteship.fleet import aggregate, crud, rollout
from liteship.fleet.api.deps import AdminAuth, DeviceAuth, SessionDep, SettingsDep, body_size, own_device
from liteship.fleet.checkin import count_refused
from liteship.fleet.models import (
    ID_PATTERN,
    MAX_TIME,
    TelemetryAccepted,
    TelemetryCreate,
    TelemetryWindowPublic,
)

router = APIRouter(prefix="/api/v1", tags=["telemetry"])


@router.post(
    "/devices/{device_id}/telemetry", response_model=TelemetryAccepted, status_code=status.HTTP_201_CREATED
)
def post_window(
    device_id: str,
    request: Request,
    body: TelemetryCreate,
    session: SessionDep,
    settings: SettingsDep,
    device: DeviceAuth,
    response: Response,
) -> TelemetryAccepted:
    """Store one window; the same window id again is acknowledged (200) and ignored.

    A window for another model or version than the server assigns this device is stored (so the
    agent's spool drains) but not counted by decisions or drift (``counted: false``): a device cannot
    steer a rollout by posting for the other arm. A running rollout of the device's model is then
    evaluated when its last evaluation is older than ``decision_interval_s``.
    """
    own_device(device_id, device)
    request.app.state.limiter.check(device.id, windows=1, bytes=body_size(request, body))
    if body.model_id is not None and device.model_id is not None and body.model_id != device.model_id:
        count_refused(session.connection(), device_id=device.id, n=1)
        session.commit()
        raise Conflict(
            f"this device is enrolled for model {device.model_id!r}, not {body.model_id!r}: the window is "
            "refused (and counted in the device's refused_reports).",
            hint="A device reports only about its own model; enroll another device for that model.",
        )
    assignment = request.app.state.checkins.assignment(session.connection(), device=device)
    model_id = body.model_id or device.model_id
    version = body.model_version or device.model_version
    counted = model_id == assignment.model_id and version is not None and version == assignment.version
    duplicate = crud.add_telemetry(session, device=device, window=body, assigned=counted)
    session.commit()
    note = (
        None
        if counted
        else f"stored but not counted: the server assigns this device {assignment.model_id} "
        f"{assignment.version}, not {model_id} {version}"
    )
    request.app.state.pruner.run_if_due(session)  # retention (liteship.fleet.retention), hourly at most
    if duplicate:
        response.status_code = status.HTTP_200_OK
        return TelemetryAccepted(window_id=body.window_id, duplicate=True, counted=counted, note=note)
    if counted:
        rollout.evaluate_if_due(session, model_id=model_id, interval_s=settings.decision_interval_s)
    return TelemetryAccepted(window_id=body.window_id, duplicate=False, counted=counted, note=note)


@router.get("/devices/{device_id}/telemetry", response_model=list[TelemetryWindowPublic])
def list_windows(
    device_id: str,
    session: SessionDep,
    _: AdminAuth,
    limit: int = Query(default=100, ge=1, le=1000),
    since: float = Query(default=0.0, ge=0.0, le=MAX_TIME),
) -> list[TelemetryWindowPublic]:
    """A device's telemetry windows, newest first (admin only; ``since``: windows that ended after)."""
    rows = crud.telemetry_of(session, device_id=device_id, limit=limit, since=since)
    return [TelemetryWindowPublic.model_validate(w) for w in rows]


@router.get("/drift")
def drift(
    session: SessionDep,
    _: AdminAuth,
    model_id: str = Query(pattern=ID_PATTERN),
    version: str | None = Query(default=None, max_length=64),
    period_s: float = Query(default=3600.0, ge=60.0, le=30 * 86400.0),
    since: float = Query(default=0.0, ge=0.0, le=MAX_TIME),
) -> list[dict[str, Any]]:
    """PSI per period of each version's live confidence against its package's reference histogram."""
    return aggregate.drift_series(session, model_id=model_id, version=version, period_s=period_s, since=since)
