"""The inference loop, the health window, sources and sinks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agent_test_helpers import slot_ok

from liteship.agent.health import HealthWindow
from liteship.agent.loop import AgentLoop
from liteship.agent.sinks import FileSink, open_sink
from liteship.agent.sources import Frame, ImageFolderSource, open_frame_source
from liteship.agent.store import Store
from liteship.agent.telemetry import Spool
from liteship.errors import AgentError, UsageError


@pytest.fixture
def store(tmp_path, keys, packages):
    s = Store(tmp_path / "state", keys.public_path)
    s.install(packages["1.0.0"])
    s.commit()
    return s


def run_loop(store, frames_dir, tmp_path, **kw):
    sink = tmp_path / "out.jsonl"
    health = kw.pop("health", None) or HealthWindow(store, inferences=kw.pop("inferences", 10))
    loop = AgentLoop(
        store,
        ImageFolderSource(frames_dir, loop=True),
        FileSink(sink),
        Spool(tmp_path / "spool"),
        health=health,
        window_s=3600,
        num_threads=1,
        **kw,
    )
    loop.run()
    return loop, [json.loads(line) for line in sink.read_text().splitlines()]


def test_loop_writes_results_and_spools_one_window(store, digit_pngs, tmp_path, digits):
    loop, results = run_loop(store, digit_pngs, tmp_path, max_frames=25)
    assert len(results) == 25 == loop.frames
    assert {"frame", "class", "label", "score", "latency_ms", "version"} <= set(results[0])
    # pixels 0..255 without declared normalization: the model still answers, finite scores
    assert all(r["score"] is not None and 0 <= r["score"] <= 1 for r in results)
    windows = [json.loads(p.read_text()) for p in loop.spool.pending()]
    assert len(windows) == 1 and windows[0]["inferences"] == 25 and windows[0]["model_version"] == "1.0.0"


def test_health_window_reverts_a_candidate_that_blows_up(store, packages, digit_pngs, tmp_path):
    store.install(packages["blowup"])  # passes its smoke test (golden inputs 0..1)
    assert store.current_version() == "2.0.0"
    loop, results = run_loop(store, digit_pngs, tmp_path, max_frames=12)
    assert store.current_version() == "1.0.0" and store.is_failed("2.0.0") and slot_ok(store) == "1.0.0"
    assert "NaN" in store.state()["last_decision"]["reason"]
    assert results[0]["version"] == "2.0.0" and results[-1]["version"] == "1.0.0"
    windows = [json.loads(p.read_text()) for p in loop.spool.pending()]
    assert sum(w["rollbacks"] for w in windows) == 1
    assert {w["model_version"] for w in windows} == {"2.0.0", "1.0.0"}


def test_health_window_commits_after_n_inferences(store, packages, digit_pngs, tmp_path):
    store.install(packages["1.1.0"])
    run_loop(store, digit_pngs, tmp_path, max_frames=12, inferences=10)
    assert store.state()["pending"] is None and store.current_version() == "1.1.0"
    assert store.state()["last_decision"]["action"] == "committed"


def test_health_window_latency_budget_and_time(store, packages):
    store.install(packages["1.1.0"])
    h = HealthWindow(store, inferences=5, latency_budget_ms=1.0)
    assert [h.observe(ok=True, latency_ms=5.0) for _ in range(5)][-1] == "reverted"
    assert "median latency" in store.state()["failed"]["1.1.0"]["reason"]
    store.install(packages["1.2.0"])
    t = [0.0]
    h = HealthWindow(store, inferences=1000, seconds=10, now=lambda: t[0])
    assert h.observe(ok=True, latency_ms=1.0) is None
    t[0] = 11.0
    assert h.tick() == "committed" and store.current_version() == "1.2.0"
    assert h.observe(ok=False) is None  # no window open: errors are telemetry, not a revert


def test_inference_error_in_window_reverts(store, packages):
    store.install(packages["1.1.0"])
    assert HealthWindow(store).observe(ok=False) == "reverted"
    assert store.current_version() == "1.0.0"


def test_pixel_frames_are_preprocessed_like_files(store, digit_pngs, tmp_path):
    from liteship.agent.loop import LoadedModel

    m = LoadedModel(store.current_dir(), num_threads=1)
    path = sorted(digit_pngs.iterdir())[3]
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"))
    a, b = m.prepare(Frame("f", path=path)), m.prepare(Frame("p", pixels=pixels))
    assert a.shape == b.shape == (1, 8, 8, 1) and np.allclose(a, b, atol=1.0)


def test_sources_and_sinks_explain_what_is_missing(tmp_path):
    with pytest.raises(UsageError, match="unknown source"):
        open_frame_source("webcam")
    with pytest.raises(AgentError, match="does not exist"):
        open_frame_source(f"images:{tmp_path / 'nope'}")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0")
    try:
        import cv2  # noqa: F401
    except ImportError:
        with pytest.raises(AgentError, match="opencv-python-headless"):
            open_frame_source(f"video:{video}")
        with pytest.raises(AgentError, match="picamera2"):
            open_frame_source("camera")
    with pytest.raises(UsageError, match="unknown sink"):
        open_sink("kafka:x")


def test_max_fps_limits_the_loop_and_reports_the_achieved_rate(store, digit_pngs, tmp_path):
    import time

    start = time.monotonic()
    loop, results = run_loop(store, digit_pngs, tmp_path, max_frames=12, max_fps=20)
    elapsed = time.monotonic() - start
    assert len(results) == 12 and elapsed >= 11 / 20  # 12 frames at 20/s take at least 0.55 s
    rate = store.state()["rate"]
    most = 20 * 12 / 11  # 12 frames, 11 pauses of 1/20 s between them
    assert rate["max_fps"] == 20 and 0 < rate["achieved_fps"] <= most and rate["frames"] == 12, rate
    windows = [json.loads(p.read_text()) for p in loop.spool.pending()]
    assert windows and all(0 < w["achieved_fps"] <= most and w["max_fps"] == 20 for w in windows), windows
    with pytest.raises(UsageError, match="max_fps"):
        run_loop(store, digit_pngs, tmp_path, max_frames=1, max_fps=0)


def test_latency_jitter_test_hook_is_parsed_per_version_and_refuses_a_bad_value(
    store, digit_pngs, tmp_path, monkeypatch
):
    from liteship.agent.loop import TEST_LATENCY_JITTER_ENV, latency_jitter_hook_ms

    assert latency_jitter_hook_ms("1.0.0") == 0.0  # unset: nothing added
    monkeypatch.setenv(TEST_LATENCY_JITTER_ENV, "0.2, 1.1.0=3")
    assert (latency_jitter_hook_ms("1.0.0"), latency_jitter_hook_ms("1.1.0")) == (0.2, 3.0)
    monkeypatch.setenv(TEST_LATENCY_JITTER_ENV, "1.0.0=50")
    _, results = run_loop(store, digit_pngs, tmp_path, max_frames=20)
    assert min(r["latency_ms"] for r in results) >= 0 and max(r["latency_ms"] for r in results) > 5
    for bad in ("fast", "1.1.0=-1", "1.1.0=nan", "1e9"):
        monkeypatch.setenv(TEST_LATENCY_JITTER_ENV, bad)
        with pytest.raises(UsageError, match=TEST_LATENCY_JITTER_ENV):
            run_loop(store, digit_pngs, tmp_path, max_frames=1)
