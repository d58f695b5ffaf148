"""Bandwidth accounting (issue 24, item 5): bytes downloaded per device and per release.

Devices report each verified download in their next check-in (``downloaded`` events: the bytes that
crossed the network for one target, counting only what a resumed download fetched again; see
``agent/updater.py``). Not downloading at all — a kept slot reinstated, a variant already installed —
reports nothing, which is the point: those bytes were saved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liteship.fleet.models import Download


@dataclass(frozen=True)
class TargetBytes:
    """One TUF target of a release: what the devices downloaded of it."""

    version: str | None
    target: str
    size: int
    downloads: int
    devices: int
    bytes: int  # over the network, all devices
    bytes_per_device: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_device(session: Session) -> dict[str, int]:
    """``device id → bytes downloaded`` (every target it reported)."""
    rows = session.execute(select(Download.device_id, func.sum(Download.bytes)).group_by(Download.device_id))
    return {device_id: int(total or 0) for device_id, total in rows}


def per_release(session: Session, *, model_id: str) -> list[TargetBytes]:
    """Per target of the model's releases (each variant is a target): downloads, devices, bytes."""
    rows = session.execute(
        select(
            Download.version,
            Download.target,
            func.max(Download.size),
            func.count(),
            func.count(func.distinct(Download.device_id)),
            func.sum(Download.bytes),
        )
        .where(Download.model_id == model_id)
        .group_by(Download.version, Download.target)
        .order_by(Download.target)
    ).all()
    return [
        TargetBytes(
            version=version,
            target=target,
            size=int(size or 0),
            downloads=int(n),
            devices=int(devices),
            bytes=int(total or 0),
            bytes_per_device=round(int(total or 0) / max(int(devices), 1), 1),
        )
        for version, target, size, n, devices, total in rows
    ]


__all__ = ["TargetBytes", "per_device", "per_release"]
