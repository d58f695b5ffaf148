"""How a device job shares the CPU with the live model: one lock between inferences and job steps
(:class:`LiveGate`), the duty cycle between steps (:class:`Pacer`), and the stop between steps
(:class:`JobStopped`). Every job kind uses them (``agent/jobs.py`` bench, ``jobs_validate.py``,
``jobs_profile.py``); this module imports none of them."""

from __future__ import annotations

import threading
import time


class JobStopped(Exception):
    """The agent is stopping: the job ends at its next step, its journal stays *running* and the next
    start reports it *interrupted* (as after a kill)."""


class LiveGate:
    """One lock between the live model's inferences and bench steps (``with gate: …``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> LiveGate:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class Pacer:
    """Holds the gate for one bench step at a time and keeps the bench within the duty cycle."""

    def __init__(self, gate: LiveGate, duty_cycle: float, stopping: threading.Event | None = None) -> None:
        self.gate, self.duty_cycle = gate, duty_cycle
        self.stopping = stopping
        self.yielded_s = 0.0

    def __enter__(self) -> Pacer:
        self.gate.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.__exit__()

    def __call__(self, run_ms: float) -> None:
        """After a run of ``run_ms``: let frames through for ``run_ms·(1-d)/d`` (at least one chance)."""
        if self.stopping is not None and self.stopping.is_set():
            raise JobStopped("the agent is stopping")
        pause = run_ms / 1000.0 * (1.0 - self.duty_cycle) / self.duty_cycle
        self.gate.__exit__()
        try:
            time.sleep(pause if pause > 0 else 0.0)
            self.yielded_s += pause
        finally:
            self.gate.__enter__()


__all__ = ["JobStopped", "LiveGate", "Pacer"]
