"""GPU benchmark entries in a process that has imported TensorFlow run in a child process without it."""

from __future__ import annotations

from liteship.bench import benchmark
from liteship.bench.isolated import needs_isolation


def test_gpu_entry_is_timed_in_a_child_process(gpu, tflite_static):
    import tensorflow  # noqa: F401  (the fixtures have imported it already)

    assert needs_isolation("gpu,cpu") and not needs_isolation("cpu") and not needs_isolation(None)
    report = benchmark(
        [tflite_static], accelerators=(None, "gpu"), runs=3, warmup=1, min_seconds=0, progress=False
    )
    interp, on_gpu = report.entries
    assert interp.accelerator is None and interp.timed == "invoke" and not interp.warnings
    assert on_gpu.accelerator == "gpu" and on_gpu.timed == "run+read" and on_gpu.fully_accelerated
    assert on_gpu.runs >= 3 and on_gpu.init_ms > 0 and on_gpu.first_inference_ms > 0
    assert on_gpu.path == str(tflite_static) and "child process" in on_gpu.warnings[-1]
