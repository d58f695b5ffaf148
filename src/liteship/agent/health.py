"""The health window after a swap: the first N inferences or T seconds decide whether a model stays.

An inference error or a NaN/Inf output reverts at once; a median latency beyond the budget (times a
slack factor, since the budget was measured on the golden inputs) reverts at the end of the window.
Restarts during the window are counted by :mod:`liteship.agent.recovery` (boot counting). A clean stop
saves the window's progress (:meth:`HealthWindow.progress`, written by
:meth:`~liteship.agent.store.Store.record_clean_shutdown`), so inferences and seconds accumulate across
clean restarts and a window completes even when the agent runs in short sessions.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from liteship.agent.store import Store

LATENCY_SLACK = 1.5


class HealthWindow:
    """Watches the candidate in ``store``'s pending window; commits or reverts it.

    Args:
        store: The model slots (``state.json`` says which candidate is pending).
        inferences: Inferences that end the window. Defaults to 50.
        seconds: Seconds that end the window (running time, summed over clean restarts). Defaults to 300.
        latency_budget_ms: Median latency allowed; ``None`` uses the package's golden budget.
        now: Monotonic time source (tests). Defaults to ``time.monotonic``.
    """

    def __init__(
        self,
        store: Store,
        *,
        inferences: int = 50,
        seconds: float = 300.0,
        latency_budget_ms: float | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.inferences, self.seconds = store, inferences, seconds
        self.latency_budget_ms, self._now = latency_budget_ms, now
        self._version: str | None = None
        self._latencies: list[float] = []
        self._started = 0.0

    @property
    def active(self) -> bool:
        pending = self.store.state()["pending"]
        version = pending["version"] if pending else None
        if version is None or version != self.store.current_version():
            self._version = None
            return False
        if version != self._version:  # resume what earlier (cleanly stopped) runs observed
            self._version = version
            self._latencies = [float(x) for x in pending.get("latencies_ms") or []]
            self._started = self._now() - float(pending.get("elapsed_s") or 0.0)
        return True

    def progress(self) -> dict[str, Any] | None:
        """What this window has observed so far (saved at a clean stop), or None when none is open."""
        if not self.active:
            return None
        return {
            "version": self._version,
            "inferences": len(self._latencies),
            "latencies_ms": [round(x, 3) for x in self._latencies],
            "elapsed_s": round(self._now() - self._started, 3),
        }

    def _budget(self) -> float | None:
        if self.latency_budget_ms is not None:
            return self.latency_budget_ms
        budget = self.store.manifest(self._version).golden.get("latency_budget_ms") if self._version else None
        return None if budget is None else float(budget) * LATENCY_SLACK

    def observe(
        self, *, ok: bool, finite: bool = True, latency_ms: float | None = None, version: str | None = None
    ) -> str | None:
        """Record one inference. Returns ``"reverted"``, ``"committed"`` or None.

        Args:
            version: The version of the model that ran it. An inference of another model (the old one,
                run between the swap on disk and the loop's reload) says nothing about the candidate
                and is ignored. Defaults to the current model.
        """
        if not self.active or (version is not None and version != self._version):
            return None
        if not ok or not finite:
            what = "an inference error" if not ok else "a NaN/Inf output"
            return self._revert(f"{what} in the health window (inference {len(self._latencies) + 1})")
        if latency_ms is not None:
            self._latencies.append(latency_ms)
        if len(self._latencies) >= self.inferences:
            return self._close()
        return self.tick()

    def tick(self) -> str | None:
        """Time-based end of the window (call it also when no frames arrive)."""
        if self.active and self._now() - self._started >= self.seconds:
            return self._close()
        return None

    def _close(self) -> str | None:
        budget = self._budget()
        median = statistics.median(self._latencies) if self._latencies else None
        if budget is not None and median is not None and median > budget:
            return self._revert(
                f"median latency {median:.2f} ms over the budget {budget:.2f} ms in the health window"
            )
        done = self.store.commit(self._version)
        self._version = None
        return "committed" if done else None

    def _revert(self, reason: str) -> str | None:
        done = self.store.revert(reason, from_version=self._version).done
        self._version = None
        return "reverted" if done else None  # not done: another thread switched the model first


__all__ = ["HealthWindow", "LATENCY_SLACK"]
