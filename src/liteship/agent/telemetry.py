"""Telemetry windows: aggregate inferences on the device, spool them to disk, upload exactly once.

A window holds counts and fixed-bin histograms only (never inputs): inference count, latency histogram,
top-1 confidence histogram, errors, rollbacks, and the fraction of inputs outside the calibration range.
Each window has a unique id; the server ignores a window id it already has, so re-sending after a lost
response never counts twice.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.agent.fsutil import atomic_write_json, fsync_dir, read_json, read_json_object
from liteship.confidence import BINS as CONFIDENCE_BINS
from liteship.confidence import confidence_bin

LATENCY_EDGES_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # + overflow bin
# HTTP statuses that say "never this window" (invalid, too large): set aside, not retried forever
REFUSED_STATUSES = frozenset({400, 413, 422})
MAX_REFUSED_KEPT = 50


@dataclass
class Window:
    """One aggregation window (mutable while open)."""

    window_id: str
    model_id: str | None
    model_version: str | None
    started: float
    inferences: int = 0
    errors: int = 0
    rollbacks: int = 0
    out_of_range: int = 0
    confidence_hist: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    latency_hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))
    latency_sum_ms: float = 0.0

    def to_dict(self, ended: float | None = None) -> dict[str, Any]:
        return {
            "window_id": self.window_id,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "started": self.started,
            "ended": ended if ended is not None else time.time(),
            "inferences": self.inferences,
            "errors": self.errors,
            "rollbacks": self.rollbacks,
            "out_of_range_fraction": (self.out_of_range / self.inferences) if self.inferences else 0.0,
            "confidence_hist": self.confidence_hist,
            "latency_hist": self.latency_hist,
            "latency_edges_ms": list(LATENCY_EDGES_MS),
            "latency_mean_ms": (self.latency_sum_ms / self.inferences) if self.inferences else None,
        }


def outside_range(x: np.ndarray, calibration_range: tuple[float, float] | None) -> bool:
    """True when ``x`` leaves the calibration range by more than 5 % of its span (telemetry's
    out-of-range count and capture's ``out-of-range`` trigger)."""
    if calibration_range is None:
        return False
    lo, hi = calibration_range
    span = (hi - lo) or 1.0
    return float(np.min(x)) < lo - 0.05 * span or float(np.max(x)) > hi + 0.05 * span


def latency_bin(ms: float) -> int:
    return int(np.searchsorted(LATENCY_EDGES_MS, ms, side="right"))


class Aggregator:
    """Accumulates inference results into the open window."""

    def __init__(
        self,
        model_id: str | None = None,
        model_version: str | None = None,
        calibration_range: tuple[float, float] | None = None,
    ) -> None:
        self.calibration_range = calibration_range
        self.window = self._new(model_id, model_version)

    @staticmethod
    def _new(model_id: str | None, model_version: str | None) -> Window:
        return Window(
            window_id=uuid.uuid4().hex, model_id=model_id, model_version=model_version, started=time.time()
        )

    def record(self, *, confidence: float | None, latency_ms: float, x: np.ndarray | None = None) -> None:
        w = self.window
        w.inferences += 1
        w.latency_sum_ms += latency_ms
        w.latency_hist[latency_bin(latency_ms)] += 1
        if confidence is not None:
            w.confidence_hist[confidence_bin(confidence)] += 1
        if x is not None and outside_range(x, self.calibration_range):
            w.out_of_range += 1

    def record_error(self) -> None:
        self.window.errors += 1

    def record_rollback(self) -> None:
        self.window.rollbacks += 1

    def close(self, model_id: str | None = None, model_version: str | None = None) -> dict[str, Any] | None:
        """Close the open window (returned as a dict, or None if empty) and open a new one."""
        w = self.window
        self.window = self._new(model_id or w.model_id, model_version or w.model_version)
        if w.inferences == 0 and w.errors == 0 and w.rollbacks == 0:
            return None
        return w.to_dict()


class Spool:
    """Closed windows on disk until the server has them. Bounded: past ``max_windows`` the oldest are
    dropped and counted; the count is itself reported with the next upload.

    A window the server refuses for what it is (HTTP 400, 413, 422: it will never take it) is moved to
    ``refused/`` (the newest 50 are kept, for a person to look at) and counted, so one bad window never
    holds back the windows behind it.
    """

    def __init__(self, root: str | Path, max_windows: int = 1000) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_windows = max_windows
        self._meta = self.root / "spool-state.json"

    def _state(self) -> dict[str, Any]:
        return read_json_object(self._meta, what="the spool's counts (dropped, refused)")

    def _count(self, key: str) -> int:
        value = self._state().get(key, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    @property
    def dropped(self) -> int:
        return self._count("dropped")

    @property
    def refused(self) -> int:
        """Windows the server refused for good since this spool was created (see ``refused/``)."""
        return self._count("refused")

    def _set_dropped(self, n: int) -> None:
        atomic_write_json(self._meta, {**self._state(), "dropped": n})

    def pending(self) -> list[Path]:
        return sorted(self.root.glob("w-*.json"))

    def put(self, window: dict[str, Any]) -> None:
        # Names sort by creation: nanosecond time, then the id (unique).
        atomic_write_json(self.root / f"w-{time.time_ns():020d}-{window['window_id']}.json", window)
        files = self.pending()
        excess = len(files) - self.max_windows
        if excess > 0:
            for f in files[:excess]:
                f.unlink(missing_ok=True)
            self._set_dropped(self.dropped + excess)
            fsync_dir(self.root)

    def _set_aside(self, f: Path, reason: str) -> None:
        aside = self.root / "refused"
        aside.mkdir(exist_ok=True)
        os.replace(f, aside / f.name)
        for old in sorted(aside.glob("w-*.json"))[:-MAX_REFUSED_KEPT]:
            old.unlink(missing_ok=True)
        atomic_write_json(
            self._meta, {**self._state(), "refused": self.refused + 1, "last_refused": reason[:500]}
        )
        fsync_dir(aside)

    def flush(self, send, on_refused: Callable[[dict[str, Any], str], None] | None = None) -> int:
        """Upload pending windows oldest first with ``send(window_dict) -> None`` (raises on failure).
        A window is deleted only after ``send`` returns; stops at the first failure, except a refusal
        (an exception whose ``status`` is in :data:`REFUSED_STATUSES`): that window is set aside,
        ``on_refused(window, reason)`` is called, and the next one is sent. Returns the count sent."""
        sent = 0
        for f in self.pending():
            window = read_json(f)
            if not isinstance(window, dict):  # unreadable: cannot be half-written (atomic), so foreign
                f.unlink(missing_ok=True)
                continue
            dropped = self.dropped
            if dropped:
                window = {**window, "dropped_windows": dropped}
            try:
                send(window)
            except Exception as e:
                if getattr(e, "status", None) not in REFUSED_STATUSES:
                    raise
                self._set_aside(f, str(e))
                if on_refused is not None:
                    on_refused(window, str(e))
                continue
            f.unlink(missing_ok=True)
            if dropped:
                self._set_dropped(0)
            sent += 1
        if sent:
            fsync_dir(self.root)
        return sent

    def __len__(self) -> int:
        return len(self.pending())


__all__ = [
    "Window",
    "Aggregator",
    "Spool",
    "REFUSED_STATUSES",
    "CONFIDENCE_BINS",
    "LATENCY_EDGES_MS",
    "confidence_bin",
    "outside_range",
]
