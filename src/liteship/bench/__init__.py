"""Benchmark models on the device runtime: init, latency percentiles, throughput, memory.

No TensorFlow here: this runs on the device. Reference runners (Keras, SavedModel) can be timed too by
passing them in already built.

    >>> report = liteship.benchmark(["model.tflite"], threads=(1, 2))        # doctest: +SKIP
    >>> print(report.entries[0].latency.p50_ms)                             # doctest: +SKIP
"""

from liteship.bench.core import benchmark, machine_info
from liteship.bench.report import BenchEntry, BenchReport, LatencyStats

__all__ = ["benchmark", "BenchReport", "BenchEntry", "LatencyStats", "machine_info"]
