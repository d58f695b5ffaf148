"""Retention: raw telemetry windows and revert rows older than ``retention_days`` are deleted.

Policy (docs/fleet.md, "Retention"):

- A window is folded into its hour's sums (:class:`~liteship.fleet.models.TelemetryHour`) when it
  arrives, so drift keeps every period after its raw windows are gone; the hourly sums are kept.
- Windows that ended, and revert rows the server received, before the cut-off are deleted. The cut-off
  is ``now − retention_days``, moved back to the start of the oldest active rollout: the decision engine
  reads an active rollout's raw windows and reverts since it started, so they are never pruned under it.
- ``retention_days = 0`` keeps everything. Pruning runs when the server starts and then at most once an
  hour, on a telemetry upload (no scheduler to deploy).
- Revert counts shown per device cover the retention period.
- Field samples (issue 25) received more than ``sample_retention_days`` ago are deleted with their files,
  except labeled ones (a label is someone's work: ``fleet samples purge`` removes those on purpose).
  Their cut-off ignores rollouts (no decision reads samples). A file the store cannot delete then (S3
  down) stays, unreferenced: space, never a sample row without its file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from liteship.fleet import samples
from liteship.fleet.models import ACTIVE_STATES, Revert, Rollout, TelemetryWindow
from liteship.types import ReportMixin

PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Pruned(ReportMixin):
    """What one pruning deleted, and the cut-off it used (None: retention is off)."""

    cutoff: float | None
    windows: int
    reverts: int
    samples: int = 0


def cutoff(session: Session, *, retention_days: float, now: float | None = None) -> float | None:
    """The time before which rows are deleted, or None when ``retention_days`` is 0 (keep all)."""
    if retention_days <= 0:
        return None
    now = time.time() if now is None else now
    oldest_active = session.scalar(
        select(func.min(Rollout.created_at)).where(Rollout.state.in_(ACTIVE_STATES))
    )
    edge = now - retention_days * 86400.0
    return edge if oldest_active is None else min(edge, float(oldest_active))


def prune(
    session: Session,
    *,
    retention_days: float,
    now: float | None = None,
    store: Any = None,
    sample_retention_days: float = 0.0,
) -> Pruned:
    """Delete the windows and revert rows older than the cut-off (:func:`cutoff`), and, given the
    artifact ``store``, the unlabeled field samples older than ``sample_retention_days``; commits."""
    now = time.time() if now is None else now
    deleted = prune_samples(session, store, sample_retention_days=sample_retention_days, now=now)
    edge = cutoff(session, retention_days=retention_days, now=now)
    if edge is None:
        return Pruned(None, 0, 0, deleted)
    windows = session.execute(delete(TelemetryWindow).where(TelemetryWindow.ended < edge))
    reverts = session.execute(delete(Revert).where(Revert.received_at < edge))
    session.commit()
    return Pruned(edge, _rows(windows), _rows(reverts), deleted)


def prune_samples(session: Session, store: Any, *, sample_retention_days: float, now: float) -> int:
    """Unlabeled field samples received before ``now − sample_retention_days`` (0: none), rows then files.

    A file the store cannot delete is logged and left unreferenced (:func:`liteship.fleet.samples.purge`).
    """
    if store is None or sample_retention_days <= 0:
        return 0
    before = now - sample_retention_days * 86400.0
    return samples.purge(session, store, model_id=None, before=before, keep_labeled=True)


def _rows(result: Any) -> int:
    """Rows a DELETE removed (a CursorResult's ``rowcount``)."""
    return int(getattr(result, "rowcount", 0) or 0)


class Pruner:
    """Runs :func:`prune` at most once per :data:`PRUNE_EVERY_S` (one per API worker)."""

    def __init__(
        self, retention_days: float, *, store: Any = None, sample_retention_days: float = 0.0
    ) -> None:
        self.retention_days = retention_days
        self.store = store
        self.sample_retention_days = sample_retention_days
        self._last = -float("inf")
        self._lock = threading.Lock()

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            if (
                self.retention_days <= 0 and self.sample_retention_days <= 0
            ) or now - self._last < PRUNE_EVERY_S:
                return False
            self._last = now
            return True

    def run_if_due(self, session: Session) -> Pruned | None:
        if not self.due():
            return None
        return prune(
            session,
            retention_days=self.retention_days,
            store=self.store,
            sample_retention_days=self.sample_retention_days,
        )


__all__ = ["Pruned", "Pruner", "cutoff", "prune", "prune_samples"]
