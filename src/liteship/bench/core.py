"""``benchmark()``: time any Runner the way LiteRT's benchmark tools do.

Per model × thread count:

1. **init** — for a .tflite (path or bytes), constructing :class:`~liteship.runtime.LiteRTRunner` inside
   the timer: read + verify the flatbuffer, create the interpreter, allocate tensors, apply the default
   (XNNPACK) delegate. A runner passed in already built has no init time.
2. **first inference** — the first run, timed alone; it is also the first warm-up run.
3. **warm-up** — ``warmup - 1`` more runs, not measured.
4. **measured runs** — at least ``runs`` runs *and* at least ``min_seconds`` seconds (LiteRT's C++
   ``benchmark_model`` defaults: 50 runs, 1 s), each timed alone with ``time.perf_counter_ns``.

What one run times (:attr:`BenchEntry.timed`):

- ``"invoke"`` (the default, for a :class:`~liteship.runtime.LiteRTRunner`): the interpreter's
  ``invoke`` only, as LiteRT's benchmark tools time it. The inputs are set (checked, converted, copied
  in) before the timer: once for random data, before every run for a dataset (the next sample), never
  inside the timed region. Outputs are left in the interpreter, as the tools leave them in theirs.
- ``"infer"`` (``measure="infer"``, and always for other runners, e.g. the Keras and SavedModel reference
  runners): one ``Runner.infer`` call end to end — feed check, copying inputs in, running, copying
  outputs out. On a model that runs in microseconds this fixed cost (a few µs) is most of the figure.

With an ``accelerator`` (LiteRT's CompiledModel API, :class:`~liteship.runtime.CompiledModelRunner`):

- **init** is compiling the model for the accelerator (what ``benchmark_litert_model.py`` calls model
  initialization); the first inference is still reported on its own (GPU kernels and buffers are set up
  lazily there).
- ``"run"`` (CPU): ``run_by_index`` alone, inputs written to their TensorBuffers before the timer, as
  ``benchmark_litert_model.py`` times it. The CPU accelerator is synchronous: outputs are ready when it
  returns.
- ``"run+read"`` (GPU, NPU, any set with one): ``run_by_index`` *and reading every output TensorBuffer*
  inside the timer. A GPU run may return before the GPU has finished; reading locks each output buffer,
  which waits for the accelerator, so the figure is the time until the outputs are readable.

LiteRT runners are built with ``raw=True``, so no Python (de)quantization happens in either mode;
random and dataset inputs are converted to the model's dtypes before any timer starts.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from liteship.bench.inputs import dataset_feeds, random_feed
from liteship.bench.isolated import bench_isolated, needs_isolation
from liteship.bench.memory import (
    current_rss_bytes,
    peak_rss_bytes,
    release_freed_memory,
    tensor_bytes,
)
from liteship.bench.report import BenchEntry, BenchReport, LatencyStats
from liteship.errors import UsageError
from liteship.progress import track
from liteship.runtime import CompiledModelRunner, LiteRTRunner, Runner, open_runner
from liteship.runtime.compiled import AcceleratorError, parse_accelerator
from liteship.runtime.cpu import cpu_name

ModelSource = Union[str, Path, bytes, Runner]
Measure = Literal["invoke", "infer"]
MEASURES = ("invoke", "infer")


def benchmark(
    models: ModelSource | Sequence[ModelSource],
    *,
    threads: Iterable[int | None] = (None,),
    runs: int = 50,
    warmup: int = 5,
    min_seconds: float = 1.0,
    data: Any = None,
    measure: Measure = "invoke",
    progress: bool = True,
    accelerators: Iterable[str | None] = (None,),
    pace: Callable[[float], None] | None = None,
) -> BenchReport:
    """Measure init time, latency percentiles, throughput and memory of one or more models.

    Args:
        models: A .tflite path, its bytes, or any built :class:`~liteship.runtime.Runner` (e.g. a
            reference Keras runner) — or a sequence of them, benchmarked one after another.
        threads: Thread counts to try for each .tflite model; ``None`` is the runner's default (the
            core count). A built runner is timed once, as it is. Defaults to ``(None,)``.
        runs: Minimum number of measured runs. Defaults to 50 (as LiteRT's benchmark_model).
        warmup: Runs before measuring, the first inference included. Defaults to 5 (as LiteRT's
            ``benchmark_litert_model.py``); 0 still runs (and reports) the first inference.
        min_seconds: Minimum wall-clock seconds of measured runs. Defaults to 1.0 (as benchmark_model).
        data: Inputs from a dataset (anything :func:`liteship.load_dataset` accepts); the runs cycle
            through up to 256 samples (64 MiB). Defaults to ``None``: random data in each input's dtype.
        measure: What one measured run times for a LiteRT runner: ``"invoke"``, the interpreter's invoke
            alone with the inputs set before the timer (as LiteRT's benchmark tools), or ``"infer"``, one
            whole ``Runner.infer`` call (feed check, input and output copies). Other runners are always
            timed by ``infer``; each entry's ``timed`` says which. Defaults to ``"invoke"``.
        progress: Draw a progress bar on a terminal. Defaults to ``True``.
        accelerators: For each .tflite model, the accelerators to time it on: ``None`` is the
            Interpreter, a string (``"cpu"``, ``"gpu,cpu"``, ``"auto"``…) LiteRT's CompiledModel API.
            Defaults to ``(None,)``.
        pace: Called after every run (warm-up and measured) with its milliseconds, outside the timer:
            a device agent uses it to give the CPU back to its live model between runs
            (:mod:`liteship.agent.jobs`). Defaults to ``None``.

    Returns:
        A :class:`BenchReport` with one entry per model × thread count, in order.

    Raises:
        UsageError: No models, or a parameter out of range.
        ModelError: A model cannot be read or loaded.
        InferenceError: The model rejects the inputs.

    Example:
        >>> report = liteship.benchmark(["a.tflite", "b.tflite"], threads=(1, 2))   # doctest: +SKIP
        >>> report.entry("a.tflite", threads=1).latency.p50_ms                     # doctest: +SKIP
    """
    sources = _as_list(models)
    thread_counts = _check(sources, tuple(threads), runs, warmup, min_seconds)
    if measure not in MEASURES:
        raise UsageError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}.")
    accels = _check_accelerators(accelerators)
    jobs: list[tuple[int, ModelSource, str | None, int | None]] = []
    for i, src in enumerate(sources):
        for accel in accels if not isinstance(src, Runner) else (None,):
            for n in thread_counts if not isinstance(src, Runner) else (None,):
                jobs.append((i, src, accel, n))
    feeds_cache: dict[int, tuple[list[dict[str, np.ndarray]], str]] = {}
    entries = []
    for i, src, accel, n in track(jobs, description="benchmarking", enabled=progress):
        entries.append(
            _bench_one(i, src, accel, n, runs, warmup, min_seconds, data, measure, feeds_cache, pace)
        )
    return BenchReport(
        entries=tuple(entries),
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        measure=measure,
        machine=machine_info(),
    )


def _as_list(models: ModelSource | Sequence[ModelSource]) -> list[ModelSource]:
    if isinstance(models, (str, Path, bytes, bytearray, Runner)):
        return [models]
    return list(models)


def _check_accelerators(accelerators: Iterable[str | None]) -> tuple[str | None, ...]:
    out: list[str | None] = []
    for a in tuple(accelerators) or (None,):
        try:
            out.append(None if a is None else ",".join(parse_accelerator(a)))
        except AcceleratorError as e:
            raise UsageError(e.message, hint=e.hint) from None
    return tuple(dict.fromkeys(out))


# bounds of every bench setting (CLI, liteship.yaml, library): a figure crossing them is a typo
MAX_RUNS = 1_000_000
MAX_WARMUP = 100_000
MAX_MIN_SECONDS = 3600.0


def _check(
    sources: list[ModelSource], threads: tuple[int | None, ...], runs: int, warmup: int, min_seconds: float
) -> tuple[int | None, ...]:
    if not sources:
        raise UsageError("no models to benchmark.", hint="Pass at least one .tflite path or a Runner.")
    if not threads:
        threads = (None,)
    bad = [t for t in threads if t is not None and (not isinstance(t, int) or t < 1)]
    if bad:
        raise UsageError(f"threads must be positive integers or None, got {bad}.")
    if not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"runs must be in 1..{MAX_RUNS:,}, got {runs}.")
    if not 0 <= warmup <= MAX_WARMUP:
        raise UsageError(f"warmup must be in 0..{MAX_WARMUP:,}, got {warmup}.")
    if not (math.isfinite(min_seconds) and 0 <= min_seconds <= MAX_MIN_SECONDS):
        raise UsageError(f"min_seconds must be a finite number in 0..{MAX_MIN_SECONDS:g}, got {min_seconds}.")
    return tuple(dict.fromkeys(threads))  # unique, in order


def _bench_one(
    index: int,
    src: ModelSource,
    accelerator: str | None,
    threads: int | None,
    runs: int,
    warmup: int,
    min_seconds: float,
    data: Any,
    measure: Measure,
    feeds_cache: dict[int, tuple[list[dict[str, np.ndarray]], str]],
    pace: Callable[[float], None] | None = None,
) -> BenchEntry:
    if needs_isolation(accelerator) and not isinstance(src, Runner):
        return bench_isolated(src, accelerator, threads, runs, warmup, min_seconds, data, measure)  # type: ignore[arg-type]
    gc.collect()
    release_freed_memory()  # else this entry reuses pages the previous one freed, and its growth reads ~0
    rss0 = current_rss_bytes()
    init_ms: float | None = None
    if isinstance(src, Runner):
        runner = src
    else:
        t0 = time.perf_counter_ns()
        runner = open_runner(src, accelerator=accelerator, num_threads=threads, raw=True)
        init_ms = (time.perf_counter_ns() - t0) / 1e6
    rss_init = current_rss_bytes()
    try:
        if index not in feeds_cache:
            feeds_cache[index] = (
                dataset_feeds(data, runner.input_specs)
                if data is not None
                else ([random_feed(runner.input_specs)], "random")
            )
        feeds, inputs = feeds_cache[index]
        rss_warm0 = current_rss_bytes()
        timed, prepare = _run_steps(runner, feeds, measure)
        first_ms, samples, elapsed = _time_runs(prepare, runs, warmup, min_seconds, pace)
        rss_delta = _rss_delta(rss0, rss_init, rss_warm0, current_rss_bytes())
        tensors = tensor_bytes(runner)
    finally:
        if runner is not src:
            runner.close()
    latency = LatencyStats.from_samples(samples)
    return BenchEntry(
        model=_label(index, src),
        path=str(src) if isinstance(src, (str, Path)) else getattr(runner, "path", None),
        backend=runner.backend,
        threads=getattr(runner, "num_threads", threads),
        inputs=inputs,
        timed=timed,
        init_ms=init_ms,
        first_inference_ms=first_ms,
        warmup=max(warmup, 1),
        latency=latency,
        elapsed_s=elapsed,
        throughput=len(samples) / elapsed if elapsed > 0 else float("nan"),
        model_size_bytes=_model_size(src, runner),
        rss_delta_bytes=rss_delta,
        peak_rss_bytes=peak_rss_bytes(),
        samples_ms=tuple(samples),
        tensor_bytes=tensors,
        accelerator=getattr(runner, "accelerator", None),
        fully_accelerated=runner.is_fully_accelerated() if isinstance(runner, CompiledModelRunner) else None,
        warnings=tuple(getattr(runner, "warnings", ())),
    )


def _run_steps(
    runner: Runner, feeds: list[dict[str, np.ndarray]], measure: Measure
) -> tuple[str, Callable[[int], Callable[[], object]]]:
    """(what is timed, ``prepare``): ``prepare(i)`` readies run ``i`` untimed and returns what to time."""
    n_feeds = len(feeds)
    if measure == "invoke" and isinstance(runner, CompiledModelRunner):
        return _compiled_steps(runner, feeds)
    if measure == "invoke" and isinstance(runner, LiteRTRunner):
        invoke = runner.invoke
        if n_feeds == 1:  # the inputs never change: set them once, as LiteRT's tools do
            runner.set_inputs(feeds[0])
            return "invoke", lambda i: invoke

        def next_sample(i: int) -> Callable[[], object]:
            runner.set_inputs(feeds[i % n_feeds])
            return invoke

        return "invoke", next_sample
    calls = [partial(runner.infer, feed) for feed in feeds]
    return "infer", lambda i: calls[i % n_feeds]


def _compiled_steps(
    runner: CompiledModelRunner, feeds: list[dict[str, np.ndarray]]
) -> tuple[str, Callable[[int], Callable[[], object]]]:
    """CPU: the run alone (synchronous). Other accelerators: the run and the output reads, which wait
    for the accelerator to finish (see the module docstring)."""
    invoke, read = runner.invoke, runner.get_outputs
    if runner.asynchronous:

        def step() -> object:
            invoke()
            return read()

        timed = "run+read"
    else:
        step, timed = invoke, "run"  # type: ignore[assignment]
    if len(feeds) == 1:
        runner.set_inputs(feeds[0])
        return timed, lambda i: step

    def next_sample(i: int) -> Callable[[], object]:
        runner.set_inputs(feeds[i % len(feeds)])
        return step

    return timed, next_sample


def _time_runs(
    prepare: Callable[[int], Callable[[], object]],
    runs: int,
    warmup: int,
    min_seconds: float,
    pace: Callable[[float], None] | None = None,
) -> tuple[float, list[float], float]:
    """(first inference ms, measured latencies ms, measured wall seconds).

    Only the call that ``prepare(i)`` returns is inside the timer; ``prepare`` itself runs outside it,
    and so does ``pace`` (its time is left out of the measured wall seconds too).
    """
    clock = time.perf_counter_ns
    run = prepare(0)
    t0 = clock()
    run()
    first_ms = (clock() - t0) / 1e6
    first = max(warmup, 1)  # measured runs carry on through the samples where warm-up left off
    for i in range(1, first):
        if pace is not None:
            pace(first_ms)
        prepare(i)()
    samples_ns: list[int] = []
    append = samples_ns.append
    min_ns = int(min_seconds * 1e9)
    start = clock()
    i = 0
    while i < runs or clock() - start < min_ns:
        run = prepare(first + i)
        t0 = clock()
        run()
        append(clock() - t0)
        i += 1
        if pace is not None:
            t1 = clock()
            pace(samples_ns[-1] / 1e6)
            start += clock() - t1  # paced time counts towards neither min_seconds nor throughput
    elapsed = (clock() - start) / 1e9
    return first_ms, [ns / 1e6 for ns in samples_ns], elapsed


def _rss_delta(
    before: int | None, after_init: int | None, warm0: int | None, warm1: int | None
) -> int | None:
    """Resident growth across init plus across the timed runs, leaving out the feeds made in between."""
    if None in (before, after_init, warm0, warm1):
        return None
    return max(0, (after_init - before) + (warm1 - warm0))  # type: ignore[operator]


def _label(index: int, src: ModelSource) -> str:
    if isinstance(src, (str, Path)):
        return str(src)
    if isinstance(src, Runner):
        return src.name
    return f"model[{index}]"


def _model_size(src: ModelSource, runner: Runner) -> int | None:
    if isinstance(src, (bytes, bytearray)):
        return len(src)
    data = getattr(runner, "model_bytes", None)
    if data is not None:
        return len(data)
    if isinstance(src, (str, Path)) and Path(src).is_file():
        return Path(src).stat().st_size
    return None


def machine_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on: CPU model and count, OS, Python.

    Args:
        cpuinfo: The text of ``/proc/cpuinfo``. Defaults to reading it (see :func:`liteship.runtime.cpu.cpu_name`).
    """
    return {
        "cpu": cpu_name(cpuinfo),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


__all__ = ["benchmark", "machine_info", "ModelSource", "Measure", "MEASURES"]
