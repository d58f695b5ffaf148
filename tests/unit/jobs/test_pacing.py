"""The bench's pace hook runs outside the timer; the agent's Pacer lets frames through between runs and
keeps the bench within its duty cycle."""

from __future__ import annotations

import threading
import time

import pytest

from liteship.agent.jobs import BenchJobs, JobRefused, LiveGate, Pacer, _checked
from liteship.bench import benchmark


def test_pace_is_outside_the_timer(tflite_float):
    calls: list[float] = []

    def pace(ms: float) -> None:
        calls.append(ms)
        time.sleep(0.01)

    e = benchmark([tflite_float], threads=(1,), runs=20, warmup=3, min_seconds=0.0, progress=False, pace=pace)
    entry = e.entries[0]
    assert len(calls) == 2 + 20 and all(c >= 0 for c in calls)  # warm-up runs after the first, then each run
    assert entry.latency.max_ms < 10.0 and entry.elapsed_s < 20 * 0.01  # the sleeps are in neither figure


def test_pacer_lets_frames_through_and_keeps_the_duty_cycle():
    gate = LiveGate()
    pacer = Pacer(gate, duty_cycle=0.25)
    got_in = threading.Event()
    with pacer:
        t = threading.Thread(target=lambda: (gate.__enter__(), got_in.set(), gate.__exit__()))
        t.start()
        assert not got_in.wait(0.05)  # a frame waits while the bench holds the gate
        start = time.perf_counter()
        pacer(10.0)  # after a 10 ms run at duty 0.25: 30 ms for frames
        assert time.perf_counter() - start >= 0.03 and got_in.is_set()
    t.join()
    assert pacer.yielded_s == pytest.approx(0.03)


def test_offers_are_bounded(tmp_path):
    good = {"name": "a.tflite", "target_path": "bench-jobs/job-1/a.tflite", "sha256": "0" * 64, "size": 10}
    variants, settings = _checked({"job_id": "j", "variants": [good], "runs": 7, "threads": 2})
    assert settings == {"runs": 7, "warmup": 5, "min_seconds": 1.0, "threads": 2} and variants == [good]
    for bad in (
        {"variants": []},
        {"variants": [good], "runs": 10**9},
        {"variants": [{**good, "size": -1}]},
        {"variants": [good] * 17},
        {"variants": [good], "min_seconds": True},
        {"variants": [{**good, "sha256": "../../etc/passwd"}]},
        {"variants": [{**good, "target_path": "digits/1.0.0/digits-1.0.0.lsp"}]},  # a model's target
    ):
        with pytest.raises(JobRefused):
            _checked({"job_id": "j", **bad})
    with pytest.raises(Exception, match="duty cycle"):
        BenchJobs(type("S", (), {"root": tmp_path})(), None, gate=LiveGate(), duty_cycle=0.0)
