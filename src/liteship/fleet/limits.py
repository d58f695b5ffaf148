"""Per-device rate limits: check-ins and windows per minute, revert events per hour, bytes per day.

One enrolled device with a valid token must not fill the database (issue 21, item 8: 688k revert rows
and 8.8k telemetry rows a minute from one device). Each device has one token bucket per kind; a request
that would take more than a bucket holds is answered ``429 Too Many Requests`` with ``Retry-After``
(whole seconds until the bucket holds enough) and charges nothing, so the agent that keeps the data and
retries later loses nothing. Buckets start full: a device back from a day offline sends its backlog at
once, up to the bucket, then at the refill rate.

The buckets live in the memory of one API worker (SQLite has one worker; with ``N`` PostgreSQL workers a
device gets up to ``N`` times the limits, still a bound). A restart refills them.

    >>> limiter = RateLimiter(Limits(checkins_per_minute=2))
    >>> limiter.take("d1", checkins=1, now=0.0), limiter.take("d1", checkins=1, now=0.0)
    (None, None)
    >>> limiter.take("d1", checkins=1, now=0.0)
    30
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import HTTPException, status

MAX_DEVICES = 100_000  # buckets kept (least recently used devices forgotten: they start full again)


@dataclass(frozen=True)
class Limits:
    """What one device may send (each a bucket's size; it refills at that amount per period)."""

    checkins_per_minute: int = 60
    windows_per_minute: int = 60
    events_per_hour: int = 100  # revert events stored (a check-in carries at most checkin.MAX_EVENTS)
    bytes_per_day: int = 64 << 20  # request bodies of check-ins and telemetry windows

    def buckets(self) -> dict[str, tuple[float, float]]:
        """``kind → (capacity, refill per second)``."""
        return {
            "checkins": (self.checkins_per_minute, self.checkins_per_minute / 60.0),
            "windows": (self.windows_per_minute, self.windows_per_minute / 60.0),
            "events": (self.events_per_hour, self.events_per_hour / 3600.0),
            "bytes": (self.bytes_per_day, self.bytes_per_day / 86400.0),
        }


class RateLimiter:
    """Token buckets per device and kind (thread-safe, bounded to :data:`MAX_DEVICES` devices)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._spec = limits.buckets()
        self._levels: OrderedDict[str, dict[str, tuple[float, float]]] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0  # requests answered 429 since start (for logs and tests)

    def take(self, device_id: str, *, now: float | None = None, **amounts: int) -> int | None:
        """Charge ``amounts`` (e.g. ``checkins=1, bytes=812``) to the device's buckets, all or nothing.

        Returns None when charged, else the whole seconds until every bucket holds its amount (nothing
        is charged). An amount larger than a bucket is charged as the full bucket (it waits for a full
        bucket instead of forever).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            levels = self._levels.get(device_id)
            if levels is None:
                levels = {}
                self._levels[device_id] = levels
                while len(self._levels) > MAX_DEVICES:
                    self._levels.popitem(last=False)
            self._levels.move_to_end(device_id)
            wait = 0.0
            current: dict[str, float] = {}
            for kind, amount in amounts.items():
                capacity, rate = self._spec[kind]
                level, at = levels.get(kind, (capacity, now))
                level = min(capacity, level + max(0.0, now - at) * rate)
                current[kind] = level
                need = min(float(amount), capacity)
                if need > level:
                    wait = max(wait, (need - level) / rate)
            if wait > 0:
                self.refused += 1
                return max(1, math.ceil(wait))
            for kind, amount in amounts.items():
                capacity, _ = self._spec[kind]
                levels[kind] = (current[kind] - min(float(amount), capacity), now)
            return None

    def check(self, device_id: str, **amounts: int) -> None:
        """:meth:`take`, raising ``429`` with ``Retry-After`` when the device is over a limit."""
        wait = self.take(device_id, **amounts)
        if wait is not None:
            kinds = ", ".join(k for k in amounts if k != "bytes") or "bytes"
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"device {device_id!r} is over its rate limit ({kinds}; {self.describe()}): retry in "
                f"{wait} s. Nothing of this request was stored; send it again then.",
                headers={"Retry-After": str(wait)},
            )

    def describe(self) -> str:
        lim = self.limits
        return (
            f"{lim.checkins_per_minute} check-ins and {lim.windows_per_minute} windows a minute, "
            f"{lim.events_per_hour} revert events an hour, {lim.bytes_per_day} bytes a day"
        )


__all__ = ["Limits", "RateLimiter"]
