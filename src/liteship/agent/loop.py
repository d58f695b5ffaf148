"""The inference loop: frames → preprocessing from the model's own metadata → LiteRT → a sink; telemetry
windows into the spool; a background thread checks in, updates and uploads the spool.

Only this thread runs the model. The updater thread swaps slots on disk and raises a flag; the loop
reloads the model between two frames. After an install or a revert the updater checks in again at once,
so the server learns the version without waiting a poll interval. SIGTERM sets a flag checked after each
frame: the current frame finishes, the updater thread finishes its step, the open window is spooled and
the spool is flushed before the process exits.

Without a model (nothing installed yet, or the last one was reverted) the loop does not block: it waits
for the first check-in (which may install one), then drops frames while it waits for an update, at most
one per ``model_wait_s``, logging "waiting for a model" every ``wait_log_s``. Dropped frames count
towards ``max_frames``, so a frame limit and SIGTERM are honoured either way.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from liteship.agent.health import HealthWindow
from liteship.agent.sinks import event
from liteship.agent.sources import Frame
from liteship.agent.store import MODEL_CHANGED, Store
from liteship.agent.telemetry import Aggregator, Spool
from liteship.errors import InferenceError, LiteshipError
from liteship.package import Manifest
from liteship.types import Preprocessing


class LoadedModel:
    """The current slot, ready to run: runner, preprocessing, labels, calibration range."""

    def __init__(self, folder: Path, num_threads: int | None = None) -> None:
        from liteship.model.metadata import labels_from_metadata, normalization_from_metadata
        from liteship.runtime import LiteRTRunner

        self.manifest = Manifest.from_bytes((folder / "manifest.json").read_bytes())
        model_path = folder / self.manifest.model["file"]
        self.runner = LiteRTRunner(str(model_path), num_threads=num_threads)
        self.input = self.runner.input_specs[0]
        pre = self.manifest.model.get("preprocessing")
        try:
            self.pre = (
                Preprocessing.from_dict(pre)
                if pre
                else normalization_from_metadata(model_path) or Preprocessing()
            )
        except LiteshipError:
            self.pre = Preprocessing()
        labels_file = self.manifest.model.get("labels")
        if labels_file and (folder / labels_file).is_file():
            self.labels = (folder / labels_file).read_text(encoding="utf-8").splitlines()
        else:
            self.labels = labels_from_metadata(model_path) or []
        r = self.manifest.calibration_range
        self.calibration_range = (r["min"], r["max"]) if r else None

    @property
    def version(self) -> str:
        return self.manifest.version

    def prepare(self, frame: Frame) -> np.ndarray:
        """A ``(1, H, W, C)`` float32 input from an image file or RGB pixels."""
        from PIL import Image

        from liteship.data import load_image

        shape = self.input.shape
        if frame.path is not None:
            return load_image(frame.path, self.pre, shape)[None]
        if frame.pixels is None:  # every source sets one of the two
            raise InferenceError(f"frame {frame.name!r} has neither a file nor pixels; nothing to infer on.")
        gray = self.pre.grayscale if self.pre.grayscale is not None else shape[-1] == 1
        im = Image.fromarray(frame.pixels).convert("L" if gray else "RGB")
        size = self.pre.size or (shape[1], shape[2])
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.float32)
        arr = arr[..., None] if arr.ndim == 2 else arr
        arr = arr[..., ::-1] if self.pre.channel_order == "bgr" and arr.shape[-1] == 3 else arr
        return self.pre.normalize(arr)[None]

    def infer(self, x: np.ndarray) -> tuple[int, float, float, bool]:
        """``(class index, top-1 score, latency ms, all outputs finite)``."""
        start = time.perf_counter()
        out = self.runner.infer({self.input.name: x})
        latency = (time.perf_counter() - start) * 1000.0
        y = np.asarray(next(iter(out.values())), dtype=np.float64).reshape(-1)
        finite = all(bool(np.all(np.isfinite(v))) for v in out.values())
        k = int(np.nanargmax(y)) if np.any(np.isfinite(y)) else 0
        return k, float(y[k]), latency, finite

    def close(self) -> None:
        self.runner.close()


class AgentLoop:
    """Runs frames through the current model until the source ends or :meth:`stop` is called.

    Args:
        store: Model slots (already recovered).
        source: An iterable of :class:`~liteship.agent.sources.Frame`.
        sink: Where results go (``write(dict)``, ``close()``).
        spool: The telemetry spool.
        updater: An :class:`~liteship.agent.updater.Updater`, or None to run offline.
        health: The health window. Defaults to 50 inferences / 300 s.
        window_s: Seconds per telemetry window. Defaults to 60.
        max_frames: Stop after this many frames, processed or dropped for want of a model. Defaults to
            no limit.
        model_wait_s: Longest wait for a model per frame before that frame is dropped. Defaults to 1.
        wait_log_s: Seconds between "waiting for a model" log lines. Defaults to 30.
    """

    JOIN_TIMEOUT_S = 10.0  # at shutdown, time for the updater thread to finish its step

    def __init__(
        self,
        store: Store,
        source: Any,
        sink: Any,
        spool: Spool,
        *,
        updater: Any = None,
        health: HealthWindow | None = None,
        window_s: float = 60.0,
        num_threads: int | None = None,
        max_frames: int | None = None,
        model_wait_s: float = 1.0,
        wait_log_s: float = 30.0,
    ) -> None:
        self.store, self.source, self.sink, self.spool, self.updater = store, source, sink, spool, updater
        self.health = health or HealthWindow(store)
        self.window_s, self.num_threads, self.max_frames = window_s, num_threads, max_frames
        self.model_wait_s, self.wait_log_s = model_wait_s, wait_log_s
        self.model: LoadedModel | None = None
        self.aggregator = Aggregator()
        self.frames = 0  # processed
        self.dropped = 0  # read while no model was there to run them
        self.stop_reason = "source ended"
        self._stop, self._changed, self._flush_lock = threading.Event(), threading.Event(), threading.Lock()
        self._wake, self._report_due, self._polled = threading.Event(), threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.gate: Any = contextlib.nullcontext()  # shared with bench jobs (liteship.agent.jobs.LiveGate)
        self.jobs: Any = None  # liteship.agent.jobs.BenchJobs, run after each poll
        self._window_started = time.monotonic()
        self._last_wait_log: float | None = None

    def stop(self, signum: int | None = None, *_: Any) -> None:
        """Stop after the current frame (also the SIGTERM/SIGINT handler)."""
        if signum is not None and not self._stop.is_set():
            self.stop_reason = f"signal {signal.Signals(signum).name}"
        self._stop.set()
        self._wake.set()

    # ---- model --------------------------------------------------------------------------------------

    def _reload(self) -> None:
        self._changed.clear()
        folder = self.store.current_dir()
        if self.model is not None and folder is not None and folder.name == self.model.version:
            return
        self._close_window()
        if self.model is not None:
            self.model.close()
            self.model = None
        if folder is None:
            return
        try:
            self.model = LoadedModel(folder, self.num_threads)
        except LiteshipError as e:  # cannot even load: a health failure of this slot
            event("model failed to load", 40, version=folder.name, error=str(e))
            if self.health.observe(ok=False, version=folder.name) != "reverted":
                self.store.revert(f"model failed to load: {e}", mark_failed=False)
            self.aggregator.record_rollback()
            return self._reload()
        cal = self.model.calibration_range
        self.aggregator = Aggregator(self.model.manifest.model_id, self.model.version, cal)
        event("model loaded", version=self.model.version, model_id=self.model.manifest.model_id)

    def _wait_for_model(self) -> bool:
        """Give a missing model a chance to arrive; False when this frame must be dropped."""
        if self.updater is not None:  # the first check-in may install one: wait for it, not for frames
            while not self._polled.is_set() and not self._stop.is_set():
                self._polled.wait(0.2)
        if self._changed.is_set():
            self._reload()
        deadline = time.monotonic() + self.model_wait_s
        while self.model is None and not self._stop.is_set():
            self._log_waiting()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._changed.wait(min(0.2, left)):
                self._reload()
        return self.model is not None

    def _log_waiting(self) -> None:
        now = time.monotonic()
        if self._last_wait_log is not None and now - self._last_wait_log < self.wait_log_s:
            return
        self._last_wait_log = now
        decision = self.store.state().get("last_decision") or {}
        event(
            "waiting for a model",
            30,
            detail="no verified model is installed; frames are dropped until the server assigns one",
            server=self.updater.client.server if self.updater is not None else None,
            dropped_frames=self.dropped,
            last_decision=f"{decision.get('action')} {decision.get('version') or ''}: "
            f"{decision.get('reason', '')}"
            if decision
            else None,
        )

    # ---- frames -------------------------------------------------------------------------------------

    def process(self, frame: Frame) -> dict[str, Any] | None:
        model = self.model
        assert model is not None
        try:
            x = model.prepare(frame)
            with self.gate:  # a bench job's step runs only between two frames
                k, score, latency, finite = model.infer(x)
        except LiteshipError as e:
            self.aggregator.record_error()
            event("inference failed", 40, frame=frame.name, error=str(e))
            verdict = self.health.observe(ok=False, version=model.version)
            self._after_health(verdict)
            return None
        self.aggregator.record(confidence=score if finite else float("nan"), latency_ms=latency, x=x)
        result = {
            "ts": round(time.time(), 3),
            "frame": frame.name,
            "class": k,
            "label": model.labels[k] if k < len(model.labels) else str(k),
            "score": score if finite else None,
            "latency_ms": round(latency, 3),
            "model_id": model.manifest.model_id,
            "version": model.version,
        }
        self.sink.write(result)
        verdict = self.health.observe(ok=True, finite=finite, latency_ms=latency, version=model.version)
        self._after_health(verdict)
        return result

    def _after_health(self, verdict: str | None) -> None:
        if verdict == "reverted":
            event("candidate reverted", 30, decision=self.store.state().get("last_decision"))
            self.aggregator.record_rollback()
            self._report_now()  # the server learns the version and the revert event at once
            self._reload()
        elif verdict == "committed":
            event("candidate committed", version=self.store.current_version())
            self._report_now()

    def _report_now(self) -> None:
        if self.updater is not None:
            self._report_due.set()
            self._wake.set()

    def _close_window(self) -> None:
        window = self.aggregator.close()
        self._window_started = time.monotonic()
        if window is not None:
            self.spool.put(window)

    def flush(self) -> int:
        if self.updater is None:
            return 0
        with self._flush_lock:
            try:
                return self.spool.flush(self.updater.client.post_window)
            except LiteshipError as e:
                event("telemetry upload deferred", 30, pending=len(self.spool), error=str(e))
                return 0

    # ---- threads ------------------------------------------------------------------------------------

    def _report(self) -> None:
        """Check in without applying the answer: tells the server what runs here now."""
        self._report_due.clear()
        try:
            decision = self.updater.report()
        except Exception as e:  # noqa: BLE001 - the updater must not stop inference
            decision = {"action": "error", "reason": f"{type(e).__name__}: {e}"}
        event("check-in (report)", **decision)

    def _run_jobs(self) -> None:
        if self.jobs is None or self._stop.is_set():
            return
        try:
            self.jobs.after_check_in()
        except Exception as e:  # noqa: BLE001 - a bench job must not stop the updater
            event("bench job error", 40, error=f"{type(e).__name__}: {e}")

    def _update_thread(self) -> None:
        try:
            self._update_loop()
        finally:  # whatever happens here, a loop waiting for the first poll must not wait forever
            self._polled.set()

    def _update_loop(self) -> None:
        poll_due = True
        while not self._stop.is_set():
            if poll_due:
                try:
                    decision = self.updater.poll_once()
                except Exception as e:  # noqa: BLE001 - the updater must not stop inference
                    decision = {"action": "error", "version": None, "reason": f"{type(e).__name__}: {e}"}
                event("check-in", **decision)
                if decision["action"] in MODEL_CHANGED:
                    self._changed.set()
                    self._report_due.set()
                self._polled.set()
                self._run_jobs()
            if self._report_due.is_set() and not self._stop.is_set():
                self._report()
            if poll_due:
                self.flush()
            poll_due = not self._wake.wait(self.updater.next_delay())  # woken early: a report is due
            self._wake.clear()

    def _source_frames(self) -> Any:
        for frame in self.source:
            if self._stop.is_set():
                return
            yield frame

    def _limit_reached(self) -> bool:
        if self.max_frames and self.frames + self.dropped >= self.max_frames:
            self.stop_reason = f"frame limit ({self.max_frames})"
            return True
        return self._stop.is_set()

    def run(self) -> int:
        """Process frames until the source ends, the frame limit, or :meth:`stop`; returns frames processed."""
        if self.updater is not None:
            self._thread = threading.Thread(target=self._update_thread, name="liteship-updater", daemon=True)
            self._thread.start()
        self._reload()
        try:
            for frame in self._source_frames():
                if self._changed.is_set():
                    self._reload()
                if self.model is None and not self._wait_for_model():
                    if self._stop.is_set():
                        break
                    self.dropped += 1
                else:
                    self.process(frame)
                    self.frames += 1
                    self._after_health(self.health.tick())
                if time.monotonic() - self._window_started >= self.window_s:
                    self._close_window()
                if self._limit_reached():
                    break
        finally:
            self._shutdown()
        return self.frames

    def _shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.JOIN_TIMEOUT_S)
            if not self._thread.is_alive() and self._report_due.is_set():
                self._report()  # an install, revert or commit the server has not heard of yet
        self._close_window()
        self.flush()
        self.sink.close()
        self.source.close()
        if self.model is not None:
            self.model.close()


__all__ = ["AgentLoop", "LoadedModel"]
