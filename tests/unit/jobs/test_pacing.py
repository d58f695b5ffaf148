"""The bench's pace hook runs outside the timer; the agent's Pacer lets frames through between runs and
keeps the bench within its duty cycle."""

from __future__ import annotations

import threading
import time

import pytest

from liteship.agent.jobs import BenchJobs, LiveGate, Pacer, _checked
from liteship.bench import benchmark
from liteship.errors import JobRefused


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


def test_offers_of_other_kinds_are_bounded():
    good = {"name": "a.tflite", "target_path": "bench-jobs/job-1/a.tflite", "sha256": "0" * 64, "size": 10}
    data = {
        "name": "validation-data.npz",
        "target_path": "bench-jobs/job-1/validation-data.npz",
        "sha256": "1" * 64,
        "size": 99,
    }
    _, settings = _checked({"job_id": "j", "variants": [good], "kind": "validate", "data": data})
    assert settings["kind"] == "validate" and settings["data"] == data
    _, settings = _checked({"job_id": "j", "variants": [good], "kind": "profile"})
    assert settings["kind"] == "profile" and settings["data"] is None
    for bad in (
        {"kind": "shell"},  # an unknown kind never runs
        {"kind": "validate"},  # no data
        {"kind": "validate", "data": {**data, "target_path": "digits/1.0.0/x.lsp"}},  # not a job target
        {"kind": "validate", "data": {**data, "size": 65 << 20}},  # over 64 MiB
        {"kind": "validate", "data": {**data, "name": "a.tflite"}},  # named like a variant
        {"kind": "profile", "data": data},  # data on a job that takes none
    ):
        with pytest.raises(JobRefused):
            _checked({"job_id": "j", "variants": [good], **bad})


def test_validation_samples_are_checked(tmp_path):
    import numpy as np

    from liteship.agent.jobs_validate import load_samples

    ok = tmp_path / "ok.npz"
    np.savez(ok, x=np.zeros((3, 4, 4, 1), np.float32))
    assert load_samples(ok).shape == (3, 4, 4, 1)
    cases = {
        "pickle.npz": lambda p: np.savez(p, x=np.array([{"a": 1}], dtype=object)),
        "nan.npz": lambda p: np.savez(p, x=np.full((2, 3), np.nan, np.float32)),
        "noX.npz": lambda p: np.savez(p, y=np.zeros((2, 3))),
        "many.npz": lambda p: np.savez(p, x=np.zeros((1001, 2), np.float32)),
        "flat.npz": lambda p: np.savez(p, x=np.zeros(5, np.float32)),
    }
    for name, make in cases.items():
        make(tmp_path / name)
        with pytest.raises(JobRefused):
            load_samples(tmp_path / name)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(JobRefused):
        load_samples(tmp_path / "junk.npz")
