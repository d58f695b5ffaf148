"""Cohorts and maintenance windows (issue 24, items 3-4): device tags, pins, update windows.

Tags (``ring=canary``, ``site=berlin``) are set at enrollment (``agent enroll --tag``) or by the
operator (``fleet tag``). A rollout started with ``tags`` takes only devices carrying all of them; the
others run the control (``reason_code: "not-in-rollout"``). A tag **pinned** to a version of a model
keeps its devices on that release whatever the channels and rollouts say (``reason_code: "pinned"``;
the first pinned tag of a device in name order wins). Update windows (device-local ``HH:MM-HH:MM``,
wrapping midnight allowed) are set per device and per tag; the assignment carries the union, and the
agent installs only inside them, except the server's ``rollback-to-control`` (an operator's abort).

Bench, validation and profile jobs take the same selector (``tags``: devices carrying all of them,
:func:`devices_tagged`), so a job reaches exactly the devices a rollout with those tags would.

Every change bumps the plan version of the models it affects (pins: the model; tag windows: every
model, since a tag spans models), so cached plans never serve a stale cohort.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from liteship.errors import Conflict
from liteship.fleet import crud
from liteship.fleet.checkin import carries_all
from liteship.fleet.models import CohortPin, CohortWindows, Device, Model, Release


def devices_tagged(session: Session, tags: Iterable[str]) -> list[str]:
    """The ids (in order) of the registered devices carrying all ``tags`` (:func:`carries_all`)."""
    wanted = frozenset(tags)
    rows = session.execute(select(Device.id, Device.tags).order_by(Device.id))
    return [
        device_id for device_id, have in rows if carries_all(have if isinstance(have, list) else (), wanted)
    ]


def known_tags(session: Session) -> list[str]:
    """Every tag some registered device carries, sorted (for error hints)."""
    seen: set[str] = set()
    for have in session.scalars(select(Device.tags).where(Device.tags.is_not(None))):
        if isinstance(have, list):
            seen.update(str(t) for t in have)
    return sorted(seen)


def set_device(
    session: Session,
    *,
    device_id: str,
    tags: list[str] | None = None,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    update_windows: list[str] | None = None,
) -> Device:
    """Set a device's tags (replace, add, remove) and/or its own update windows.

    Raises:
        NotFound: unknown device.
    """
    device = crud.get_device(session, device_id=device_id)
    if tags is not None or add or remove:
        current = list(tags if tags is not None else device.tags or [])
        new = [t for t in dict.fromkeys([*current, *add]) if t not in set(remove)]
        if len(new) > 16:
            raise Conflict(f"a device carries at most 16 tags; this change gives {device_id} {len(new)}.")
        device.tags = new or None
    if update_windows is not None:
        device.update_windows = list(dict.fromkeys(update_windows)) or None
    session.flush()
    return device


def pin(session: Session, *, model_id: str, tag: str, version: str) -> CohortPin:
    """Pin the devices tagged ``tag`` to ``version`` of ``model_id`` (replacing an earlier pin).

    Raises:
        NotFound: unknown model or version.
    """
    release = crud.get_release(session, model_id=model_id, version=version)
    row = session.get(CohortPin, (model_id, tag))
    if row is None:
        row = CohortPin(model_id=model_id, tag=tag, release_id=release.id, created_at=time.time())
        session.add(row)
    else:
        row.release_id, row.created_at = release.id, time.time()
    crud.bump_plan(session, model_id=model_id)
    session.flush()
    return row


def unpin(session: Session, *, model_id: str, tag: str) -> bool:
    """Remove a pin; False when there was none."""
    row = session.get(CohortPin, (model_id, tag))
    if row is None:
        return False
    session.delete(row)
    crud.bump_plan(session, model_id=model_id)
    session.flush()
    return True


def pins_of(session: Session, *, model_id: str) -> dict[str, str]:
    """``tag → pinned version`` of a model."""
    rows = session.execute(
        select(CohortPin.tag, Release.version)
        .join(Release, CohortPin.release_id == Release.id)
        .where(CohortPin.model_id == model_id)
    ).all()
    return {tag: version for tag, version in rows}


def set_tag_windows(session: Session, *, tag: str, windows: list[str]) -> None:
    """Set (or, with no windows, clear) the update windows of every device carrying ``tag``."""
    row = session.get(CohortWindows, tag)
    if not windows:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(CohortWindows(tag=tag, windows=list(dict.fromkeys(windows)), updated_at=time.time()))
    else:
        row.windows, row.updated_at = list(dict.fromkeys(windows)), time.time()
    for model_id in session.scalars(select(Model.id)):
        crud.bump_plan(session, model_id=model_id)
    session.flush()


def tag_windows(session: Session) -> dict[str, list[str]]:
    return {
        w.tag: list(w.windows) for w in session.scalars(select(CohortWindows).order_by(CohortWindows.tag))
    }


__all__ = [
    "carries_all",
    "devices_tagged",
    "known_tags",
    "pin",
    "pins_of",
    "set_device",
    "set_tag_windows",
    "tag_windows",
    "unpin",
]
