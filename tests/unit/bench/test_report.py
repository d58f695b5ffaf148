import dataclasses
import json
import math

import numpy as np
import pytest

from liteship.bench import BenchEntry, BenchReport, LatencyStats
from liteship.bench.inputs import random_feed, to_model_dtype
from liteship.types import TensorSpec


def test_latency_stats_match_numpy_and_are_ordered():
    samples = list(np.random.default_rng(1).gamma(2.0, 1.0, 501))
    s = LatencyStats.from_samples(samples)
    assert s.count == 501
    assert s.p50_ms == pytest.approx(np.median(samples))
    assert s.p99_ms == pytest.approx(np.percentile(samples, 99))
    assert s.std_ms == pytest.approx(np.std(samples, ddof=1))
    assert s.min_ms <= s.p50_ms <= s.p90_ms <= s.p95_ms <= s.p99_ms <= s.max_ms


def test_latency_stats_of_one_and_of_no_samples():
    one = LatencyStats.from_samples([2.5])
    assert (one.count, one.std_ms, one.p50_ms, one.max_ms) == (1, 0.0, 2.5, 2.5)
    assert math.isnan(LatencyStats.from_samples([]).mean_ms)


def _entry(model: str, threads: int, samples: tuple[float, ...]) -> BenchEntry:
    return BenchEntry(
        model=model, path=model, backend="x", threads=threads, inputs="random", timed="invoke",
        init_ms=1.0, first_inference_ms=2.0, warmup=5, latency=LatencyStats.from_samples(samples),
        elapsed_s=0.1,
        throughput=30.0, model_size_bytes=10, rss_delta_bytes=0, peak_rss_bytes=100, samples_ms=samples,
    )  # fmt: skip


def test_report_json_leaves_samples_out_unless_asked():
    report = BenchReport(entries=(_entry("a.tflite", 1, (1.0, 2.0, 3.0)),), runs=3, warmup=5, min_seconds=0)
    d = report.to_dict()
    json.dumps(d)  # JSON-ready
    assert "samples_ms" not in d["entries"][0] and d["entries"][0]["runs"] == 3
    assert report.to_dict(samples=True)["entries"][0]["samples_ms"] == [1.0, 2.0, 3.0]


def test_report_entry_lookup_names_what_exists():
    report = BenchReport(
        entries=(_entry("a.tflite", 1, (1.0,)), _entry("a.tflite", 2, (0.5,))),
        runs=1,
        warmup=0,
        min_seconds=0,
    )
    assert report.entry("a.tflite", threads=2).latency.p50_ms == 0.5
    with pytest.raises(KeyError, match="a.tflite@1"):
        report.entry("b.tflite")


def test_random_feed_uses_each_inputs_dtype_and_range():
    specs = [
        TensorSpec("f", (1, 4, 4, 3), "float32"),
        TensorSpec("q", (-1, 8), "int8", scale=0.1, zero_point=-3),
        TensorSpec("u", (1, 5), "uint8", scale=0.5, zero_point=128),
    ]
    feed = random_feed(specs)
    assert feed["f"].dtype == np.float32 and feed["f"].shape == (1, 4, 4, 3)
    assert feed["f"].min() >= -1 and feed["f"].max() < 1
    assert feed["q"].dtype == np.int8 and feed["q"].shape == (1, 8)  # dynamic batch → 1
    assert feed["u"].dtype == np.uint8 and feed["u"].max() <= 127  # as LiteRT's tool: at most 127


def test_dataset_samples_for_a_quantized_input_are_quantized_before_timing():
    spec = TensorSpec("q", (1, 2), "int8", scale=0.5, zero_point=1)
    q = to_model_dtype(np.array([1.0, -1.25], np.float32), spec)
    assert q.dtype == np.int8 and q.shape == (1, 2)
    assert q.tolist() == [[3, -2]]  # round half away from zero: -2.5 → -3, + zp 1


def test_entries_say_what_was_timed_and_the_note_says_it_in_words():
    invoke = BenchReport(entries=(_entry("a.tflite", 1, (1.0,)),), runs=1, warmup=1, min_seconds=0)
    d = invoke.to_dict()
    assert d["measure"] == "invoke" and d["entries"][0]["timed"] == "invoke"
    assert invoke.timed_note().startswith("latency = the interpreter's invoke alone, inputs set before")
    ref = dataclasses.replace(_entry("keras", 1, (2.0,)), timed="infer")
    assert BenchReport(entries=(ref,), runs=1, warmup=1, min_seconds=0).timed_note() == (
        "latency = one Runner.infer call (feed check, set inputs, run, get outputs)."
    )
    both = BenchReport(entries=(invoke.entries[0], ref), runs=1, warmup=1, min_seconds=0).timed_note()
    assert "invoke alone" in both and "where timed is invoke" in both and "where timed is infer" in both
