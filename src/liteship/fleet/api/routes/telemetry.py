"""Telemetry windows (device, own id only, idempotent by window id) and drift (admin)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Query, Response, status

from liteship.fleet import crud
from liteship.fleet.api.deps import AdminAuth, DeviceAuth, SessionDep, SettingsDep, own_device
from liteship.fleet.models import (
    ID_PATTERN,
    Rollout,
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
    body: TelemetryCreate,
    session: SessionDep,
    settings: SettingsDep,
    device: DeviceAuth,
    response: Response,
) -> TelemetryAccepted:
    """Store one window; the same window id again is acknowledged (200) and ignored.

    A running rollout of the device's model is evaluated when its last evaluation is older than
    ``decision_interval_s``.
    """
    own_device(device_id, device)
    duplicate = crud.add_telemetry(session, device=device, window=body)
    session.commit()
    if duplicate:
        response.status_code = status.HTTP_200_OK
        return TelemetryAccepted(window_id=body.window_id, duplicate=True)
    model_id = body.model_id or device.model_id
    rollout = crud.active_rollout(session, model_id=model_id) if model_id else None
    due = (
        rollout is not None and (time.time() - (rollout.evaluated_at or 0.0)) >= settings.decision_interval_s
    )
    if rollout is not None and due and rollout.state == "running":
        locked = session.get(Rollout, rollout.id, with_for_update=True, populate_existing=True)
        if (
            locked is not None
            and (time.time() - (locked.evaluated_at or 0.0)) >= settings.decision_interval_s
        ):
            crud.evaluate_rollout(session, rollout=locked)
        session.commit()
    return TelemetryAccepted(window_id=body.window_id, duplicate=False)


@router.get("/devices/{device_id}/telemetry", response_model=list[TelemetryWindowPublic])
def list_windows(
    device_id: str,
    session: SessionDep,
    _: AdminAuth,
    limit: int = Query(default=100, ge=1, le=1000),
    since: float = Query(default=0.0, ge=0.0),
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
    since: float = Query(default=0.0, ge=0.0),
) -> list[dict[str, Any]]:
    """PSI per period of each version's live confidence against its package's reference histogram."""
    return crud.drift_series(session, model_id=model_id, version=version, period_s=period_s, since=since)
