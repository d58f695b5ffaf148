"""Devices: register with the enrollment token, check in (own id only), read the own assignment."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from liteship.errors import NotFound
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
from liteship.fleet.checkin import CheckIns, DeviceIdentity, hash_token, revert_events
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
    return await _check_in(request, device, body, body_size(request, body))


async def _check_in(request: Request, device: DeviceIdentity, body: CheckIn, size: int) -> Assignment:
    """The check-in once the device and its body are known (shared by the route and its fast path)."""
    events = len(revert_events(body.health))
    amounts = {"checkins": 1, "bytes": size} | ({"events": events} if events else {})
    request.app.state.limiter.check(device.id, **amounts)  # 429 + Retry-After; nothing stored
    assignment = await request.app.state.checkins.check_in_async(device=device, data=body)
    if assignment is None:
        raise NotFound(f"device {device.id!r} is not registered.", hint="Register it again.")
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


# ---- the check-in's fast path ------------------------------------------------------------------------

CHECKIN_PATH = "/api/v1/devices/{device_id}/checkin"
_SLOW = "liteship.checkin.slow"  # scope key: the fast path handed this request to the FastAPI route


class _FastCheckInRoute(Route):
    """Matches the check-in path ahead of the FastAPI route, except for requests it handed back."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_SLOW):
            return Match.NONE, {}
        return super().matches(scope)


class FastCheckIn:
    """``POST /api/v1/devices/{id}/checkin`` without FastAPI's per-request machinery (issue 24.6).

    Route matching among ~100 routes, dependency solving and the re-validation of the returned
    :class:`Assignment` against the response model were about half of a check-in's server CPU. This
    handles the common request — a cached device token for the path's own device, a JSON body that
    :class:`CheckIn` accepts (parsed and validated exactly as FastAPI does: ``json.loads``, then
    ``CheckIn.model_validate``) — and hands every other request, body replayed, to the FastAPI route,
    which answers it as before (401/403/422 and their messages, the token lookup in the database). From
    the rate limit on, both run the same code (:func:`_check_in`); errors raised there reach the app's
    exception handlers as from the route. The answer is ``Assignment.model_dump_json()``: the same JSON.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        request = Request(scope, receive)
        found = self._fast(scope, request, raw)
        if found is None:
            await self._slow(scope, receive, send, raw)
            return
        device, body = found
        assignment = await _check_in(request, device, body, body_size(request, body))
        content = assignment.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _fast(self, scope: Scope, request: Request, raw: bytes) -> tuple[DeviceIdentity, CheckIn] | None:  # noqa: PLR0911
        """The device and the body when this request is the common case, else None (the slow path)."""
        headers = request.headers
        if headers.get("content-type") != "application/json" or not raw:
            return None
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        checkins: CheckIns = self.app.state.checkins
        device = checkins.tokens.get(hash_token(token))
        if device is None or device.id != scope["path_params"].get("device_id"):
            return None
        try:
            data: Any = json.loads(raw)
            body = CheckIn.model_validate(data)
        except Exception:  # noqa: BLE001 — invalid JSON, too deep (RecursionError), refused: the route answers
            return None
        return device, body

    async def _slow(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> None:
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        scope[_SLOW] = True
        await self.app.router(scope, replay, send)


def add_fast_check_in(app: FastAPI) -> None:
    """Put :class:`FastCheckIn` in front of the check-in route (call after the routers are included)."""
    app.router.routes.insert(0, _FastCheckInRoute(CHECKIN_PATH, FastCheckIn(app), methods=["POST"]))
