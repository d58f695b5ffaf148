"""Cohorts and maintenance windows (admin): device tags and windows, pins, tag windows (issue 24)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path

from liteship.errors import NotFound
from liteship.fleet import cohorts, crud
from liteship.fleet.api.deps import AdminAuth, SessionDep
from liteship.fleet.models import TAG_PATTERN, CohortPinCreate, CohortWindowsSet, DeviceSettings

router = APIRouter(prefix="/api/v1", tags=["cohorts"])


@router.patch("/devices/{device_id}")
def set_device(device_id: str, body: DeviceSettings, session: SessionDep, _: AdminAuth) -> dict[str, Any]:
    """Set a device's tags (``tags`` replaces; ``add_tags`` / ``remove_tags``) and its update windows."""
    device = cohorts.set_device(
        session,
        device_id=device_id,
        tags=body.tags,
        add=body.add_tags,
        remove=body.remove_tags,
        update_windows=body.update_windows,
    )
    session.commit()
    return {"device_id": device.id, "tags": device.tags or [], "update_windows": device.update_windows or []}


@router.get("/models/{model_id}/pins")
def list_pins(model_id: str, session: SessionDep, _: AdminAuth) -> dict[str, str]:
    """``tag → version`` of the model's pinned cohorts."""
    if crud.get_model(session, model_id=model_id) is None:
        raise NotFound(f"no model {model_id!r}.", hint="List models with `liteship fleet models`.")
    return cohorts.pins_of(session, model_id=model_id)


@router.post("/models/{model_id}/pins", status_code=201)
def add_pin(model_id: str, body: CohortPinCreate, session: SessionDep, _: AdminAuth) -> dict[str, str]:
    """Pin the devices tagged ``tag`` to ``version`` (replaces an earlier pin of that tag)."""
    cohorts.pin(session, model_id=model_id, tag=body.tag, version=body.version)
    session.commit()
    return cohorts.pins_of(session, model_id=model_id)


@router.delete("/models/{model_id}/pins/{tag}")
def remove_pin(model_id: str, tag: str, session: SessionDep, _: AdminAuth) -> dict[str, str]:
    if not cohorts.unpin(session, model_id=model_id, tag=tag):
        raise NotFound(f"{model_id} has no pin for tag {tag[:64]!r}.")
    session.commit()
    return cohorts.pins_of(session, model_id=model_id)


@router.put("/cohorts/{tag}/windows")
def set_windows(
    body: CohortWindowsSet, session: SessionDep, _: AdminAuth, tag: str = Path(pattern=TAG_PATTERN)
) -> dict[str, list[str]]:
    """The update windows of every device tagged ``tag`` (device-local ``HH:MM-HH:MM``; [] clears)."""
    cohorts.set_tag_windows(session, tag=tag, windows=body.windows)
    session.commit()
    return cohorts.tag_windows(session)
