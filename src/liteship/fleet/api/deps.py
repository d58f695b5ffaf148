"""FastAPI dependencies: the database session and who is calling (a device or the admin).

@router.get("/x")
def handler(session: SessionDep, device: DeviceAuth) -> ...
"""

from __future__ import annotations

import hmac
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from liteship.fleet import crud
from liteship.fleet.checkin import CheckIns, DeviceIdentity, hash_token
from liteship.fleet.models import Device
from liteship.fleet.settings import Settings

D = TypeVar("D", Device, DeviceIdentity)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; routes commit explicitly, anything uncommitted is rolled back."""
    with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@asynccontextmanager
async def spooled_body(request: Request, *, suffix: str, what: str, empty: str) -> AsyncIterator[Path]:
    """The raw request body streamed to a temporary file under ``DATA/tmp``, removed afterwards.

    A body over ``max_package_bytes`` is refused with 413 (``"<what> is over N bytes."``) as soon as it
    gets there; an empty one with 400 (``empty`` is that message).
    """
    settings = request.app.state.settings
    limit = settings.max_package_bytes
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=suffix)
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{what} is over {limit} bytes.")
                f.write(chunk)
        if size == 0:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, empty)
        yield path
    finally:
        path.unlink(missing_ok=True)


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer``. The dashboard's session cookie is not a token: it is
    accepted only by the dashboard's own pages (:mod:`liteship.fleet.dashboard`)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


def is_admin(settings: Settings, token: str | None) -> bool:
    expected = settings.admin_token  # always set by create_app (liteship.fleet.secrets.ensure_secrets)
    if not token or not expected:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def current_device(request: Request, session: SessionDep) -> Device:
    """The device whose token is in ``Authorization: Bearer``; 401 otherwise."""
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing device token: send `Authorization: Bearer <token>` from registration.")
    device = crud.device_by_token(session, token=token)
    if device is None:
        if is_admin(request.app.state.settings, token):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "this endpoint is for devices; the admin token cannot act as one."
            )
        raise _unauthorized("unknown device token; register the device to get one.")
    return device


async def current_device_identity(request: Request) -> DeviceIdentity:
    """As :func:`current_device`, but only who the device is, from the token cache (the check-in path).

    Async so that a cached token costs no thread hop; only a cache miss reads the database (in the pool).
    """
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing device token: send `Authorization: Bearer <token>` from registration.")
    checkins: CheckIns = request.app.state.checkins
    token_hash = hash_token(token)
    found = checkins.tokens.get(token_hash)
    if found is None:
        found = await run_in_threadpool(checkins.lookup, token_hash)
    if found is None:
        if is_admin(request.app.state.settings, token):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "this endpoint is for devices; the admin token cannot act as one."
            )
        raise _unauthorized("unknown device token; register the device to get one.")
    return found


def require_admin(request: Request, session: SessionDep) -> None:
    """Accept only the admin token: 403 for a device token, 401 for anything else."""
    token = bearer_token(request)
    if is_admin(request.app.state.settings, token):
        return
    if token is not None and crud.device_by_token(session, token=token) is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this endpoint needs the admin token; device tokens cannot use it."
        )
    raise _unauthorized("missing or wrong admin token: send `Authorization: Bearer <admin token>`.")


def body_size(request: Request, body: BaseModel) -> int:
    """Bytes of a request's body: its ``Content-Length`` (BodyLimit has already bounded it), else the
    size of the parsed body as JSON (a chunked request)."""
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else len(body.model_dump_json())


def own_device(device_id: str, device: D) -> D:
    """403 unless the authenticated device is ``device_id`` (devices act only for themselves)."""
    if device.id != device_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"device {device.id!r} cannot act for device {device_id!r}."
        )
    return device


DeviceAuth = Annotated[Device, Depends(current_device)]
DeviceIdentityAuth = Annotated[DeviceIdentity, Depends(current_device_identity)]
AdminAuth = Annotated[None, Depends(require_admin)]


COOKIE = "liteship_dashboard"  # the dashboard's session (fleet/dashboard.py, gallery.py, dashboard_jobs.py)


def signed_in(request: Request, session: Any) -> bool:
    """The admin token (``Authorization: Bearer``) or a live dashboard session cookie."""
    if is_admin(request.app.state.settings, bearer_token(request)):
        return True
    return crud.dashboard_session_valid(session, value=request.cookies.get(COOKIE))


def same_origin(request: Request) -> bool:
    """A form post from this server's own pages: its Origin (or Referer) names this host, when sent.

    SameSite=Strict already keeps the cookie off cross-site posts; this is the second lock.
    """
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True
    host = request.headers.get("host", "")
    return source.split("://", 1)[-1].split("/", 1)[0] == host
