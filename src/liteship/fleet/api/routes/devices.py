"""Devices: register with the enrollment token, check in (own id only), read the own assignment."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request, status

from liteship.fleet import crud
from liteship.fleet.api.deps import (
    AdminAuth,
    DeviceAuth,
    DeviceIdentityAuth,
    SessionDep,
    SettingsDep,
    own_device,
)
from liteship.fleet.models import Assignment, CheckIn, DeviceCreate, DevicePublic, DeviceRegistered

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


@router.post("/register", response_model=DeviceRegistered, status_code=status.HTTP_201_CREATED)
def register(body: DeviceCreate, session: SessionDep, settings: SettingsDep) -> DeviceRegistered:
    """Register a device; its token is returned once (the server keeps only a hash)."""
    if not hmac.compare_digest(body.enrollment_token.encode(), settings.enrollment_token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong enrollment token.")
    device, token = crud.register_device(session, device_id=body.device_id, model_id=body.model_id)
    session.commit()
    return DeviceRegistered(device_id=device.id, token=token)


@router.get("", response_model=list[DevicePublic])
def list_devices(session: SessionDep, _: AdminAuth) -> list[DevicePublic]:
    """Every device with the version it last reported."""
    return [DevicePublic.model_validate(d) for d in crud.list_devices(session)]


@router.post("/{device_id}/checkin", response_model=Assignment)
async def check_in(device_id: str, body: CheckIn, request: Request, device: DeviceIdentityAuth) -> Assignment:
    """Report what the device runs; returns what it should run (the hot path: see ``fleet.checkin``)."""
    own_device(device_id, device)
    assignment = await request.app.state.checkins.check_in_async(device=device, data=body)
    if assignment is None:
        raise crud.NotFound(f"device {device_id!r} is not registered.", hint="Register it again.")
    return assignment


@router.get("/{device_id}/assignment", response_model=Assignment)
def assignment(device_id: str, session: SessionDep, device: DeviceAuth) -> Assignment:
    """The device's own assignment (a device cannot read another's)."""
    own_device(device_id, device)
    return crud.assignment_for(session, device=device)
