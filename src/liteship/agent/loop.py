"""The inference loop: frames → preprocessing from the model's own metadata → LiteRT → a sink; telemetry
windows into the spool; a background thread checks in, updates and uploads the spool.

Only this thread runs the model. The updater thread swaps slots on disk and raises a flag; the loop
reloads the model between two frames. SIGTERM sets a flag checked after each frame: the current frame
finishes, the open window is spooled and the spool is flushed before the process exits.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from liteship.agent.health import HealthWindow
from liteship.agent.sinks import event
from liteship.agent.sources import Frame
from liteship.agent.store import Store
from liteship.agent.telemetry import Aggregator, Spool
from liteship.errors import LiteshipError
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
        gray = self.pre.grayscale if self.pre.grayscale is not None else shape[-1] == 1
        im = Image.fromarray(frame.pixels).convert("L" if gray else "RGB")
        size = self.pre.size or (shape[1], shape[2])
        im = im.resize((size[1], size[0]), Image.BILINEAR)
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
        max_frames: Stop after this many frames (tests). Defaults to no limit.
    """

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
    ) -> None:
        self.store, self.source, self.sink, self.spool, self.updater = store, source, sink, spool, updater
        self.health = health or HealthWindow(store)
        self.window_s, self.num_threads, self.max_frames = window_s, num_threads, max_frames
        self.model: LoadedModel | None = None
        self.aggregator = Aggregator()
        self.frames = 0
        self._stop, self._changed, self._flush_lock = threading.Event(), threading.Event(), threading.Lock()
        self._window_started = time.monotonic()

    def stop(self, *_: Any) -> None:
        self._stop.set()

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
            if self.health.observe(ok=False) != "reverted":
                self.store.revert(f"model failed to load: {e}", mark_failed=False)
            self.aggregator.record_rollback()
            return self._reload()
        cal = self.model.calibration_range
        self.aggregator = Aggregator(self.model.manifest.model_id, self.model.version, cal)
        event("model loaded", version=self.model.version, model_id=self.model.manifest.model_id)

    def _wait_for_model(self) -> bool:
        while self.model is None and not self._stop.is_set():
            self._changed.wait(0.2)
            self._reload()
        return self.model is not None

    # ---- frames -------------------------------------------------------------------------------------

    def process(self, frame: Frame) -> dict[str, Any] | None:
        model = self.model
        assert model is not None
        try:
            x = model.prepare(frame)
            k, score, latency, finite = model.infer(x)
        except LiteshipError as e:
            self.aggregator.record_error()
            event("inference failed", 40, frame=frame.name, error=str(e))
            verdict = self.health.observe(ok=False)
            return self._after_health(verdict)
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
        self._after_health(self.health.observe(ok=True, finite=finite, latency_ms=latency))
        return result

    def _after_health(self, verdict: str | None) -> None:
        if verdict == "reverted":
            event("candidate reverted", 30, decision=self.store.state().get("last_decision"))
            self.aggregator.record_rollback()
            self._reload()
        elif verdict == "committed":
            event("candidate committed", version=self.store.current_version())

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

    def _update_thread(self) -> None:
        while not self._stop.is_set():
            try:
                decision = self.updater.poll_once()
            except Exception as e:  # noqa: BLE001 - the updater must not stop inference
                decision = {"action": "error", "version": None, "reason": f"{type(e).__name__}: {e}"}
            event("check-in", **decision)
            if decision["action"] in ("installed", "reverted-by-server"):
                self._changed.set()
            self.flush()
            self._stop.wait(self.updater.next_delay())

    def run(self) -> int:
        """Process frames; returns the number processed."""
        if self.updater is not None:
            threading.Thread(target=self._update_thread, name="liteship-updater", daemon=True).start()
        self._reload()
        try:
            for frame in self.source:
                if self._stop.is_set() or not self._wait_for_model():
                    break
                if self._changed.is_set():
                    self._reload()
                    if not self._wait_for_model():
                        break
                self.process(frame)
                self.frames += 1
                self._after_health(self.health.tick())
                if time.monotonic() - self._window_started >= self.window_s:
                    self._close_window()
                if self._stop.is_set() or (self.max_frames and self.frames >= self.max_frames):
                    break
        finally:
            self._stop.set()
            self._close_window()
            self.flush()
            self.sink.close()
            self.source.close()
            if self.model is not None:
                self.model.close()
        return self.frames


__all__ = ["AgentLoop", "LoadedModel"]
