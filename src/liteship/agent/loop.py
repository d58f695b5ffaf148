"""The inference loop: frames → preprocessing from the model's own metadata → LiteRT → a sink; telemetry
windows into the spool; a background thread checks in, updates and uploads the spool.

Only this thread runs the model. The updater thread swaps slots on disk and raises a flag; the loop
reloads the model between two frames. Device jobs (bench, validate, profile: :mod:`liteship.agent.jobs`)
run on a third thread, ``liteship-jobs``: a job of minutes never delays a check-in, an update or a
revert the server orders (issue 21); the updater only hands it the latest assignment. After an install or a revert the updater checks in again at once,
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
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from liteship.agent.health import HealthWindow
from liteship.agent.sinks import event
from liteship.agent.sources import Frame
from liteship.agent.store import MODEL_CHANGED, Lease, Store
from liteship.agent.telemetry import Aggregator, Spool, outside_range
from liteship.confidence import top1_confidence
from liteship.data import load_image, prepare_image, read_labels
from liteship.errors import InferenceError, LiteshipError, ModelError, UsageError
from liteship.model.metadata import labels_from_metadata
from liteship.model.outputs import score_kind
from liteship.package import Manifest
from liteship.package.reference import package_rule
from liteship.runtime.factory import device_runner

# Tests only: "MS" or "VERSION=MS,…" adds a random 0..MS ms to every latency the agent measures (of any
# version, or of VERSION), as a busy machine would. Never set outside tests (docs/agent.md).
TEST_LATENCY_JITTER_ENV = "LITESHIP_TEST_LATENCY_JITTER_MS"


def latency_jitter_hook_ms(version: str) -> float:
    """The largest random latency ``LITESHIP_TEST_LATENCY_JITTER_MS`` adds to ``version``'s inferences
    (0 when unset; a malformed value is a usage error, never ignored)."""
    spec = os.environ.get(TEST_LATENCY_JITTER_ENV, "").strip()
    if not spec:
        return 0.0
    jitter = 0.0
    for item in spec.split(","):
        name, sep, value = item.strip().rpartition("=")
        try:
            ms = float(value)
        except ValueError:
            ms = float("nan")
        if not 0 <= ms <= 10_000:
            raise UsageError(
                f"{TEST_LATENCY_JITTER_ENV} item {item!r} is not MS or VERSION=MS with 0 <= MS <= 10000.",
                hint=f"It is a test hook: unset {TEST_LATENCY_JITTER_ENV} outside tests.",
            )
        if not sep or name == version:
            jitter = ms
    return jitter


class LoadedModel:
    """The current slot, ready to run: runner, preprocessing, labels, calibration range."""

    def __init__(self, folder: Path, num_threads: int | None = None, accelerator: str | None = None) -> None:
        self.manifest = Manifest.from_bytes((folder / "manifest.json").read_bytes())
        model_path = folder / self.manifest.model["file"]
        try:  # never run un-normalized: an unreadable declaration fails the load (an event, a revert)
            rule = package_rule(model_path, self.manifest.model.get("preprocessing"))
        except (LiteshipError, TypeError, ValueError) as e:
            raise ModelError(
                f"the preprocessing declaration of {self.manifest.version} cannot be read ({e}); "
                "refusing to run the model on un-normalized frames.",
                hint="Re-package the model with a valid preprocessing record (mean/std/size).",
            ) from e
        self.pre, self.preprocessing_text = rule.preprocessing, rule.describe()  # the one rule, said
        # An accelerator that fails to start falls back to the CPU: logged and reported, never a rollback.
        self.runner, self.accelerator_fallback = device_runner(
            str(model_path), accelerator=accelerator, num_threads=num_threads
        )
        self.accelerator = getattr(self.runner, "accelerator", "cpu")
        self.input = self.runner.input_specs[0]
        self.output = self.runner.output_specs[0]
        # Probabilities or logits: decided once, from the graph, as the package's reference histogram was.
        self.score_kind = score_kind(model_path, self.output.name)
        labels_file = self.manifest.model.get("labels")
        if labels_file and (folder / labels_file).is_file():
            self.labels = read_labels(folder / labels_file)
        else:
            self.labels = labels_from_metadata(model_path) or []
        r = self.manifest.calibration_range
        self.calibration_range = (r["min"], r["max"]) if r else None
        self.test_jitter_ms = latency_jitter_hook_ms(self.version)
        if self.test_jitter_ms:
            event(
                f"test hook {TEST_LATENCY_JITTER_ENV}: up to {self.test_jitter_ms:g} ms is added to every "
                f"latency of {self.version} (tests only)",
                30,
            )

    @property
    def version(self) -> str:
        return self.manifest.version

    def prepare(self, frame: Frame) -> np.ndarray:
        """A ``(1, H, W, C)`` float32 input from an image file or RGB pixels, prepared by
        :mod:`liteship.data` exactly as ``validate`` and the pipeline prepare the same image."""
        shape = self.input.shape
        if frame.path is not None:
            return load_image(frame.path, self.pre, shape)[None]
        if frame.pixels is None:  # every source sets one of the two
            raise InferenceError(f"frame {frame.name!r} has neither a file nor pixels; nothing to infer on.")
        return prepare_image(frame.pixels, self.pre, shape)[None]

    def infer(self, x: np.ndarray) -> tuple[int, float, float, bool]:
        """``(class index, top-1 confidence, latency ms, all outputs finite)``.

        The confidence is :func:`liteship.confidence.top1_confidence` of the first output (softmax of
        logits, the top probability otherwise, as the graph says: :attr:`score_kind`), the number the
        package's drift reference bins.
        """
        start = time.perf_counter()
        out = self.runner.infer({self.input.name: x})
        latency = (time.perf_counter() - start) * 1000.0
        if self.test_jitter_ms:  # tests only (TEST_LATENCY_JITTER_ENV)
            latency += random.uniform(0.0, self.test_jitter_ms)  # noqa: S311 - not cryptographic
        y = np.asarray(out[self.output.name], dtype=np.float64).reshape(-1)
        self.last_scores = y  # field capture keeps it with the input (liteship.agent.capture)
        finite = all(bool(np.all(np.isfinite(v))) for v in out.values())
        k = int(np.nanargmax(y)) if np.any(np.isfinite(y)) else 0
        return k, float(top1_confidence(y, self.score_kind)[0]), latency, finite

    def close(self) -> None:
        self.runner.close()


def _window_refused(window: dict[str, Any], reason: str) -> None:
    event(
        "telemetry window refused by the server; set aside in the spool's refused/ folder, the next "
        "windows are sent",
        30,
        window_id=window.get("window_id"),
        error=reason,
    )


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
        max_fps: Frames per second at most (the loop sleeps between frames, so a camera or a
            ``--loop``ed folder does not take a full core). The achieved rate goes into every telemetry
            window (``achieved_fps``) and ``state.json`` (``agent status``). Defaults to no limit.
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
        accelerator: str | None = None,
        max_frames: int | None = None,
        model_wait_s: float = 1.0,
        wait_log_s: float = 30.0,
        max_fps: float | None = None,
    ) -> None:
        self.store, self.source, self.sink, self.spool, self.updater = store, source, sink, spool, updater
        self.health = health or HealthWindow(store)
        self.window_s, self.num_threads, self.max_frames = window_s, num_threads, max_frames
        self.accelerator = accelerator
        self.model_wait_s, self.wait_log_s = model_wait_s, wait_log_s
        if max_fps is not None and not 0 < max_fps <= 1000:
            raise UsageError(f"max_fps must be above 0 and at most 1000, got {max_fps!r}.")
        self.max_fps = max_fps
        latency_jitter_hook_ms("")  # a malformed test hook is refused at start, not at a model's load
        self._next_frame = 0.0  # monotonic time the last frame started (max_fps)
        self._rate_frames, self._rate_started = 0, time.monotonic()
        self.model: LoadedModel | None = None
        self._lease: Lease | None = None
        self.aggregator = Aggregator()
        self.frames = 0  # processed
        self.dropped = 0  # read while no model was there to run them
        self.stop_reason = "source ended"
        self._stop, self._changed, self._flush_lock = threading.Event(), threading.Event(), threading.Lock()
        self._wake, self._report_due, self._polled = threading.Event(), threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs_thread: threading.Thread | None = None
        self._jobs_due = threading.Event()  # a check-in brought an assignment: the jobs thread looks at it
        self.gate: Any = contextlib.nullcontext()  # shared with bench jobs (liteship.agent.pacing.LiveGate)
        self.jobs: Any = None  # liteship.agent.jobs.BenchJobs, run after each poll
        self.capture: Any = None  # liteship.agent.capture.Capture: policy and upload after each poll
        self._window_started = time.monotonic()
        self._upload_after = 0.0  # monotonic time before which telemetry is not uploaded (Retry-After)
        self._last_wait_log: float | None = None
        self.windows_lost = 0  # telemetry windows a full disk kept out of the spool
        self._disk_logged: dict[str, float] = {}

    def stop(self, signum: int | None = None, *_: Any) -> None:
        """Stop after the current frame (also the SIGTERM/SIGINT handler)."""
        if signum is not None and not self._stop.is_set():
            self.stop_reason = f"signal {signal.Signals(signum).name}"
        self._stop.set()
        self._wake.set()

    # ---- model --------------------------------------------------------------------------------------

    def _reload(self) -> None:
        """Load what ``current`` names now (read under the store's lock and leased, so the updater
        cannot delete it while it loads or runs); a load failure reverts exactly that version."""
        self._changed.clear()
        current = self.store.current_version()
        if self.model is not None and current == self.model.version:
            return
        self._close_window()
        self._unload()
        lease = self.store.lease_current()
        if lease is None:
            return
        try:
            self.model = LoadedModel(lease.folder, self.num_threads, self.accelerator)
        except LiteshipError as e:  # cannot even load: a health failure of this slot
            self.store.release(lease)
            event("model failed to load", 40, version=lease.version, error=str(e))
            if self.health.observe(ok=False, version=lease.version) != "reverted":
                self.store.revert(f"model failed to load: {e}", from_version=lease.version, mark_failed=False)
            self.aggregator.record_rollback()
            return self._reload()
        self._lease = lease
        cal = self.model.calibration_range
        self.aggregator = Aggregator(self.model.manifest.model_id, self.model.version, cal)
        event(
            "model loaded",
            version=self.model.version,
            model_id=self.model.manifest.model_id,
            accelerator=self.model.accelerator,
            preprocessing=self.model.preprocessing_text,
        )
        if self.updater is not None:  # reported in every check-in's profile
            self.updater.running_on = self.model.accelerator
            self.updater.fallback = self.model.accelerator_fallback
        if self.model.accelerator_fallback:
            event(
                "accelerator fell back to the CPU",
                30,
                requested=self.accelerator,
                reason=self.model.accelerator_fallback,
            )

    def _unload(self) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None
        self.store.release(self._lease)
        self._lease = None

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
        if self.capture is not None and finite:
            self._capture(model, frame, x, k, score, str(result["label"]))
        verdict = self.health.observe(ok=True, finite=finite, latency_ms=latency, version=model.version)
        self._after_health(verdict)
        return result

    def _capture(
        self, model: LoadedModel, frame: Frame, x: np.ndarray, k: int, score: float, label: str
    ) -> None:
        """Offer the inference to field capture (a rule check and a queue put: never blocks)."""
        try:
            self.capture.offer(
                model_id=model.manifest.model_id,
                version=model.version,
                x=x,
                scores=model.last_scores,
                klass=k,
                confidence=score,
                out_of_range=outside_range(x, model.calibration_range),
                preprocessing={"mean": list(model.pre.mean), "std": list(model.pre.std)},
                frame=frame,
                label=label,
            )
        except Exception as e:  # noqa: BLE001 - capture must never stop inference
            event("capture error", 40, error=f"{type(e).__name__}: {e}")

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
        rate = self._rate()
        self._window_started = time.monotonic()
        if window is not None:
            window.update(achieved_fps=rate["achieved_fps"], max_fps=self.max_fps)
            try:
                self.spool.put(window)
            except OSError as e:  # a full disk must not stop inference (issue 25): the window is lost
                self.windows_lost += 1
                self._disk_full("telemetry window dropped: it cannot be written to the spool", e)

    def _rate(self) -> dict[str, Any]:
        """Frames per second since the last call (processed and dropped), kept for ``agent status``."""
        now = time.monotonic()
        elapsed = max(now - self._rate_started, 1e-6)
        rate = {
            "achieved_fps": round(self._rate_frames / elapsed, 3),
            "max_fps": self.max_fps,
            "frames": self._rate_frames,
            "seconds": round(elapsed, 3),
            "at": time.time(),
        }
        if self._rate_frames:
            try:
                self.store.update_state(lambda s: s.__setitem__("rate", rate))
            except OSError as e:  # a full disk: the rate is reported again with the next window
                self._disk_full("the frame rate cannot be written to state.json", e)
        self._rate_frames, self._rate_started = 0, now
        return rate

    def _disk_full(self, what: str, e: OSError) -> None:
        """Log a failed write at most once a minute per kind; inference goes on."""
        now = time.monotonic()
        if now - self._disk_logged.get(what, -1e9) >= 60.0:
            self._disk_logged[what] = now
            event(what, 30, error=f"{type(e).__name__}: {e}", windows_lost=self.windows_lost)

    def _pace(self) -> None:
        """Sleep until the next frame may start under ``max_fps`` (SIGTERM ends the sleep)."""
        if self.max_fps is None:
            return
        now = time.monotonic()
        due = self._next_frame + 1.0 / self.max_fps  # one period after the last frame started
        if due > now:
            self._stop.wait(due - now)
        self._next_frame = max(due, now)

    def flush(self) -> int:
        """Upload the spooled windows; after a ``429``/``503`` none until its ``Retry-After`` has passed
        (the windows stay in the spool, so a rate-limited upload loses nothing and sends no request in
        between). Returns the windows sent."""
        if self.updater is None:
            return 0
        with self._flush_lock:
            wait = self._upload_after - time.monotonic()
            if wait > 0:
                event(
                    "telemetry upload waits (Retry-After)", 20, pending=len(self.spool), wait_s=round(wait, 1)
                )
                return 0
            try:
                return self.spool.flush(self.updater.client.post_window, on_refused=_window_refused)
            except LiteshipError as e:
                status = getattr(e, "status", None)
                retry = getattr(e, "retry_after", None)
                if status in (429, 503):  # no Retry-After: wait one poll interval
                    self._upload_after = time.monotonic() + (retry if retry else self.updater.interval)
                event(
                    "telemetry upload deferred",
                    30,
                    pending=len(self.spool),
                    error=str(e),
                    retry_after_s=retry,
                )
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
        """Hand the assignment to the jobs thread (never run a job here: check-ins must go on)."""
        if self.jobs is not None and not self._stop.is_set():
            self._jobs_due.set()

    def _jobs_loop(self) -> None:
        """The jobs thread: after each check-in, send owed reports and run offered jobs, one at a time."""
        while not self._stop.is_set():
            if not self._jobs_due.wait(0.5):
                continue
            self._jobs_due.clear()
            try:
                self.jobs.after_check_in()
            except Exception as e:  # noqa: BLE001 - a device job must not stop the agent
                event("device job error", 40, error=f"{type(e).__name__}: {e}")

    def _run_capture(self) -> None:
        """Field capture after a check-in: the signed policy of the assignment (TUF), then uploads."""
        if self.capture is None or self._stop.is_set():
            return
        try:
            last = self.store.state().get("last_checkin") or {}
            if last.get("ok"):  # offline: the policy stays as it was (it expires by itself)
                offer = (last.get("assignment") or {}).get("capture")
                model = self.model  # the loop thread may be reloading it: the enrolled model first
                model_id = getattr(self.updater, "model_id", None) or (
                    model.manifest.model_id if model is not None else None
                )
                self.capture.apply_offer(offer, tuf=self.updater.tuf, model_id=model_id)
            self.capture.upload(self.updater.client)
        except Exception as e:  # noqa: BLE001 - capture must not stop the updater
            event("capture error", 40, error=f"{type(e).__name__}: {e}")

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
                self._run_capture()
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
        if self.updater is not None and self.jobs is not None:
            self._jobs_thread = threading.Thread(target=self._jobs_loop, name="liteship-jobs", daemon=True)
            self._jobs_thread.start()
        self._reload()
        self._next_frame = time.monotonic()
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
                self._rate_frames += 1
                if time.monotonic() - self._window_started >= self.window_s:
                    self._close_window()
                if self._limit_reached():
                    break
                self._pace()
        finally:
            self._shutdown()
        return self.frames

    def _shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.jobs is not None:
            self.jobs.stopping.set()  # a job stops at its next step; its journal says "interrupted"
        if self._jobs_thread is not None:
            self._jobs_thread.join(self.JOIN_TIMEOUT_S)
        if self._thread is not None:
            self._thread.join(self.JOIN_TIMEOUT_S)
            if not self._thread.is_alive() and self._report_due.is_set():
                self._report()  # an install, revert or commit the server has not heard of yet
        self._close_window()
        self.flush()
        if self.capture is not None:
            self.capture.close()
        self.sink.close()
        self.source.close()
        self._unload()


__all__ = ["AgentLoop", "LoadedModel", "TEST_LATENCY_JITTER_ENV", "latency_jitter_hook_ms"]
