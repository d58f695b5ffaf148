"""Devices: register with the enrollment token, check in (own id only), read the own assignment."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Query, Request, status

from liteship.fleet import crud
from liteship.fleet.api.deps import (
    AdminAuth,
    DeviceAuth,
    DeviceIdentityAuth,
    SessionDep,
    SettingsDep,
    body_size,
    own_device,
)
from liteship.fleet.api.routes.jobs import attach_offers
from liteship.fleet.api.routes.samples import attach_capture
from liteship.fleet.checkin import revert_events
from liteship.fleet.models import (
    Assignment,
    CheckIn,
    DeviceCreate,
    DevicePublic,
    DeviceRegistered,
    RevertPublic,
)
from liteship.fleet.profile import health_text, runtime_text

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
reverts_router = APIRouter(prefix="/api/v1/reverts", tags=["devices"])


@router.post("/register", response_model=DeviceRegistered, status_code=status.HTTP_201_CREATED)
def register(body: DeviceCreate, session: SessionDep, settings: SettingsDep) -> DeviceRegistered:
    """Register a device; its token is returned once (the server keeps only a hash)."""
    expected = settings.enrollment_token or ""  # always set by create_app (ensure_secrets)
    if not expected or not hmac.compare_digest(body.enrollment_token.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong enrollment token.")
    device, token = crud.register_device(session, device_id=body.device_id, model_id=body.model_id)
    device.tags = list(dict.fromkeys(body.tags)) or None  # cohorts chosen at enrollment (issue 24)
    session.commit()
    return DeviceRegistered(device_id=device.id, token=token)


def profile_filter(request: Request) -> dict[str, str]:
    """``?profile.KEY=VALUE`` query parameters (at most 16; keys ≤ 64, values ≤ 200 characters)."""
    found = {
        k.removeprefix("profile."): v for k, v in request.query_params.items() if k.startswith("profile.")
    }
    if len(found) > 16 or any(not 0 < len(k) <= 64 or len(v) > 200 for k, v in found.items()):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "profile filters: at most 16 `profile.KEY=VALUE` parameters, keys of 1-64 and values of "
            "at most 200 characters.",
        )
    return found


@router.get("", response_model=list[DevicePublic])
def list_devices(request: Request, session: SessionDep, _: AdminAuth) -> list[DevicePublic]:
    """Every device: the version it reports and the one it is assigned, its profile, health, reverts.

    Filter by profile with ``?profile.KEY=VALUE`` (repeatable; all must hold), e.g.
    ``?profile.machine=aarch64&profile.isa=dotprod``: a list field (``isa``, ``accelerators``) matches
    when it holds the value; others compare as text, case-insensitively.
    """
    out = []
    for row in crud.device_listing(session, profile=profile_filter(request)):
        device = row.pop("device")
        row["profile_summary"] = runtime_text(device.runtime)
        row["health_summary"] = health_text(device.health, row["reverts"])
        out.append(DevicePublic.model_validate(device).model_copy(update=row))
    return out


@router.get("/{device_id}/reverts", response_model=list[RevertPublic])
def device_reverts(
    device_id: str, session: SessionDep, _: AdminAuth, limit: int = Query(default=100, ge=1, le=1000)
) -> list[RevertPublic]:
    """The revert events a device reported (newest first)."""
    rows = crud.list_reverts(session, device_id=device_id, limit=limit)
    return [RevertPublic.model_validate(r) for r in rows]


@reverts_router.get("", response_model=list[RevertPublic])
def all_reverts(
    session: SessionDep, _: AdminAuth, limit: int = Query(default=100, ge=1, le=1000)
) -> list[RevertPublic]:
    """The revert events of every device (newest first)."""
    return [RevertPublic.model_validate(r) for r in crud.list_reverts(session, limit=limit)]


@router.post("/{device_id}/checkin", response_model=Assignment)
async def check_in(device_id: str, body: CheckIn, request: Request, device: DeviceIdentityAuth) -> Assignment:
    """Report what the device runs; returns what it should run (the hot path: see ``fleet.checkin``)."""
    own_device(device_id, device)
    events = len(revert_events(body.health))
    amounts = {"checkins": 1, "bytes": body_size(request, body)} | ({"events": events} if events else {})
    request.app.state.limiter.check(device.id, **amounts)  # 429 + Retry-After; nothing stored
    assignment = await request.app.state.checkins.check_in_async(device=device, data=body)
    if assignment is None:
        raise crud.NotFound(f"device {device_id!r} is not registered.", hint="Register it again.")
    mirrors = request.app.state.settings.mirrors
    if mirrors and assignment.version:
        assignment = assignment.model_copy(update={"mirrors": mirrors})
    assignment = await attach_capture(request, assignment)  # field capture (liteship.fleet.samples)
    return await attach_offers(request, assignment)  # bench jobs (liteship.fleet.jobs)


@router.get("/{device_id}/assignment", response_model=Assignment)
def assignment(device_id: str, session: SessionDep, device: DeviceAuth) -> Assignment:
    """The device's own assignment (a device cannot read another's)."""
    own_device(device_id, device)
    return crud.assignment_for(session, device=device)
