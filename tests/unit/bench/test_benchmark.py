"""benchmark(): structure and sanity of the report on real tiny models (not timings)."""

import os
import time
from collections import Counter

import numpy as np
import pytest

from liteship.bench import benchmark
from liteship.errors import ModelError, UsageError
from liteship.runtime import LiteRTRunner, Runner
from liteship.types import TensorSpec

FAST = {"runs": 5, "warmup": 2, "min_seconds": 0.05, "progress": False}


def _check_sane(e, runs: int, min_seconds: float):
    s = e.latency
    assert s.count == len(e.samples_ms) >= runs
    assert s.min_ms <= s.p50_ms <= s.p90_ms <= s.p95_ms <= s.p99_ms <= s.max_ms
    assert s.min_ms <= s.mean_ms <= s.max_ms and s.std_ms >= 0
    assert s.min_ms > 0 and e.first_inference_ms > 0
    assert e.elapsed_s >= min_seconds * 0.99
    assert sum(e.samples_ms) / 1e3 <= e.elapsed_s  # latencies lie inside the measured wall time
    assert e.throughput == pytest.approx(s.count / e.elapsed_s)
    assert e.peak_rss_bytes is not None and e.peak_rss_bytes > 0
    assert e.rss_delta_bytes is not None and e.rss_delta_bytes >= 0


def test_one_entry_per_model_and_thread_count_in_order(tflite_float, tflite_int8):
    report = benchmark([tflite_float, tflite_int8], threads=(1, 2), **FAST)
    assert [(e.path, e.threads) for e in report.entries] == [
        (str(tflite_float), 1),
        (str(tflite_float), 2),
        (str(tflite_int8), 1),
        (str(tflite_int8), 2),
    ]
    for e in report.entries:
        _check_sane(e, runs=5, min_seconds=0.05)
        assert e.init_ms is not None and e.init_ms > 0
        assert e.model_size_bytes == os.path.getsize(e.path)
        assert e.inputs == "random" and e.warmup == 2 and "litert" in e.backend.lower()
        assert e.timed == "invoke"
    assert (report.runs, report.warmup, report.min_seconds, report.measure) == (5, 2, 0.05, "invoke")
    assert report.machine["cpu_count"] >= 1


def test_runs_is_a_minimum_and_min_seconds_extends_it(tflite_float):
    only_runs = benchmark(tflite_float, threads=(1,), runs=7, warmup=0, min_seconds=0, progress=False)
    assert only_runs.entries[0].runs == 7 and only_runs.entries[0].warmup == 1  # first inference still runs
    by_time = benchmark(tflite_float, threads=(1,), runs=1, warmup=1, min_seconds=0.2, progress=False)
    e = by_time.entries[0]
    assert e.runs > 1 and e.elapsed_s >= 0.2


def test_inputs_from_a_dataset_on_float_and_int8_models(tflite_float, tflite_int8, val_npz):
    report = benchmark([tflite_float, tflite_int8], threads=(1,), data=val_npz, **FAST)
    for e in report.entries:
        assert e.inputs == str(val_npz)
        _check_sane(e, runs=5, min_seconds=0.05)


def test_a_built_runner_is_timed_as_it_is(tflite_float):
    with LiteRTRunner(tflite_float, num_threads=1) as runner:
        report = benchmark(runner, threads=(1, 2), **FAST)
    (e,) = report.entries  # thread counts apply to files only
    assert e.init_ms is None and e.threads == 1 and e.model == runner.name
    _check_sane(e, runs=5, min_seconds=0.05)


def test_model_bytes_are_accepted(tflite_int8):
    data = tflite_int8.read_bytes()
    (e,) = benchmark(data, threads=(1,), **FAST).entries
    assert e.path is None and e.model == "model[0]" and e.model_size_bytes == len(data)


def test_a_corrupt_model_raises_model_error(tmp_path, tflite_float):
    bad = tmp_path / "bad.tflite"
    data = bytearray(tflite_float.read_bytes())
    bad.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ModelError, match="bad.tflite"):
        benchmark(bad, **FAST)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"runs": 0}, r"runs must be in 1\.\.1,000,000, got 0"),
        ({"runs": 10**400}, "runs must be in"),  # issue 21 item 13: ran without bound
        ({"min_seconds": float("nan")}, "min_seconds must be a finite number"),
        ({"min_seconds": float("inf")}, "min_seconds must be a finite number"),
        ({"threads": (0,)}, "threads must be positive"),
        ({"warmup": -1}, "warmup"),
        ({"min_seconds": -1.0}, "min_seconds"),
        ({"measure": "run"}, "measure must be one of invoke, infer, got 'run'"),
    ],
)
def test_bad_parameters_are_usage_errors(tflite_float, kwargs, match):
    with pytest.raises(UsageError, match=match):
        benchmark(tflite_float, **{**FAST, **kwargs})


def test_no_models_is_a_usage_error():
    with pytest.raises(UsageError, match="no models"):
        benchmark([], progress=False)


def test_samples_are_kept_in_run_order_for_histograms(tflite_float):
    (e,) = benchmark(tflite_float, threads=(1,), **FAST).entries
    assert isinstance(e.samples_ms, tuple) and np.isclose(np.median(e.samples_ms), e.latency.p50_ms)


def test_benchmark_and_html_run_without_tensorflow(no_tf_python, tflite_int8, tmp_path):
    out = tmp_path / "b.html"
    p = no_tf_python(f"""
        import liteship
        from liteship.bench.html import write_html
        r = liteship.benchmark({str(tflite_int8)!r}, threads=(1,), runs=3, min_seconds=0, progress=False)
        write_html(r, {str(out)!r})
        assert "tensorflow" not in sys.modules
        print(r.entries[0].runs)
    """)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout.split()[-1]) >= 3 and out.exists()


# -- what one measured run times ----------------------------------------------------------------------
class CountingRunner(LiteRTRunner):
    """Counts the calls the benchmark makes; ``set_inputs`` and ``invoke`` can be made to sleep."""

    def __init__(self, *args, set_sleep: float = 0.0, invoke_sleep: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()
        self.set_sleep, self.invoke_sleep = set_sleep, invoke_sleep

    def set_inputs(self, feed):
        self.calls["set_inputs"] += 1
        time.sleep(self.set_sleep)
        super().set_inputs(feed)

    def invoke(self):
        self.calls["invoke"] += 1
        time.sleep(self.invoke_sleep)
        super().invoke()

    def infer(self, feed):
        self.calls["infer"] += 1
        return super().infer(feed)


def test_invoke_mode_sets_random_inputs_once_and_times_invoke_only(tflite_float):
    with CountingRunner(tflite_float, num_threads=1, raw=True) as r:
        (e,) = benchmark(r, runs=5, warmup=3, min_seconds=0, progress=False).entries
    assert e.timed == "invoke" and e.runs == 5
    assert r.calls == {"set_inputs": 1, "invoke": 3 + 5}  # first inference + 2 warm-up + 5 measured


def test_invoke_mode_sets_each_dataset_sample_outside_the_timer(tflite_float, val_npz):
    sleep = 0.03
    with CountingRunner(tflite_float, num_threads=1, raw=True, set_sleep=sleep) as r:
        (e,) = benchmark(r, runs=5, warmup=2, min_seconds=0, data=val_npz, progress=False).entries
    assert e.timed == "invoke" and e.inputs == str(val_npz)
    assert r.calls == {"set_inputs": 2 + 5, "invoke": 2 + 5}  # the next sample before every run
    # the sleeps happened inside the measured phase, but no run's latency holds one
    assert e.elapsed_s >= 5 * sleep
    assert e.latency.p50_ms < sleep * 1e3 and e.first_inference_ms < sleep * 1e3
    # the control: what invoke does is inside the timer
    with CountingRunner(tflite_float, num_threads=1, raw=True, invoke_sleep=sleep) as r:
        (slow,) = benchmark(r, runs=3, warmup=1, min_seconds=0, progress=False).entries
    assert slow.latency.min_ms >= sleep * 1e3


def test_infer_mode_times_whole_infer_calls(tflite_float, val_npz):
    with CountingRunner(tflite_float, num_threads=1, raw=True) as r:
        report = benchmark(r, runs=5, warmup=2, min_seconds=0, data=val_npz, measure="infer", progress=False)
    (e,) = report.entries
    assert e.timed == "infer" and report.measure == "infer"
    assert r.calls == {"infer": 2 + 5}
    _check_sane(e, runs=5, min_seconds=0)


class DoublingRunner(Runner):
    """Not a LiteRT runner (like the Keras and SavedModel reference runners): timed by infer."""

    backend, name = "numpy", "double"
    calls = 0

    @property
    def input_specs(self):
        return [TensorSpec("x", (1, 4), "float32")]

    @property
    def output_specs(self):
        return [TensorSpec("y", (1, 4), "float32")]

    def _infer(self, feed):
        self.calls += 1
        return {"y": feed["x"] * 2}


def test_other_runners_are_timed_by_infer(tflite_float):
    other = DoublingRunner()
    report = benchmark([tflite_float, other], threads=(1,), runs=4, warmup=1, min_seconds=0, progress=False)
    assert [(e.model, e.timed) for e in report.entries] == [
        (str(tflite_float), "invoke"),
        ("double", "infer"),
    ]
    assert other.calls == 1 + 4 and report.measure == "invoke"
    assert "one Runner.infer call" in report.timed_note() and "invoke alone" in report.timed_note()


def test_tensor_memory_is_measured_per_entry_not_only_the_first(tflite_float, tflite_int8):
    from liteship.model.flatbuffer import load_model

    # the same model twice: RSS growth reads ~0 the second time (pages reused), the tensor bytes do not
    report = benchmark([tflite_float, tflite_int8, tflite_float], threads=(1,), **FAST)
    f1, i8, f2 = report.entries
    assert f1.tensor_bytes is not None and f1.tensor_bytes == f2.tensor_bytes > 0
    assert 0 < i8.tensor_bytes < f1.tensor_bytes  # int8 activations take a quarter of float32's bytes
    # independently: every non-constant tensor of the main graph, at the batch-1 shapes
    model = load_model(tflite_float).model
    sg = model.subgraphs[0]
    want = 0
    for t in sg.tensors:
        buf = model.buffers[t.buffer]
        if buf.data is None or len(buf.data) == 0:
            want += int(np.prod([max(d, 1) for d in t.shape])) * 4  # float32 everywhere
    assert f1.tensor_bytes == want
    assert report.to_dict()["entries"][0]["tensor_bytes"] == want
