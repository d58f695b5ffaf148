"""Wall-clock sanity for devices without a real-time clock (a Raspberry Pi boots in 1970 until NTP).

The agent persists the last known-good time. A clock earlier than that (or earlier than this release
was built) is "unknown", not trusted: expiry checks that need real time are deferred rather than
failing everything, and nothing is bricked. Monotonic time is used for all durations.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from liteship.agent.fsutil import atomic_write_json, read_json_object

# No liteship release can run before this moment; a clock showing an earlier time is wrong.
BUILD_FLOOR = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class ClockReading:
    now: float  # what the system clock says
    trusted: bool  # False: the clock is impossible (before the floor or the last known-good time)
    last_good: float | None

    @property
    def best_estimate(self) -> float:
        """The system time when trusted, else the last known-good time (a lower bound)."""
        return self.now if self.trusted else (self.last_good or BUILD_FLOOR)


class Clock:
    """Reads the system clock against a persisted last-good time.

    Args:
        state_file: Where the last known-good time is kept.
        now: Time source (for tests). Defaults to ``time.time``.
        slack: How far (seconds) the clock may step back before it is called impossible
            (NTP corrections step it back a little). Defaults to 1 day.
    """

    def __init__(self, state_file: str | Path, now=time.time, slack: float = 86_400.0) -> None:
        self.state_file = Path(state_file)
        self._now = now
        self.slack = slack

    def last_good(self) -> float | None:
        data = read_json_object(self.state_file, what="the last known-good time")
        v = data.get("last_good_time")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    def read(self) -> ClockReading:
        now = float(self._now())
        last = self.last_good()
        floor = max(BUILD_FLOOR, (last or 0.0) - self.slack)
        return ClockReading(now=now, trusted=now >= floor, last_good=last)

    def confirm(self, server_time: float | None = None) -> None:
        """Record a known-good time: the server's (from an authenticated response) or our own when trusted."""
        reading = self.read()
        candidate = server_time if server_time is not None else (reading.now if reading.trusted else None)
        if candidate is None or candidate < BUILD_FLOOR:
            return
        if reading.last_good is None or candidate > reading.last_good:
            atomic_write_json(self.state_file, {"last_good_time": candidate})


__all__ = ["Clock", "ClockReading", "BUILD_FLOOR"]
