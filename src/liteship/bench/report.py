"""BenchReport: per model × thread count latency statistics, memory and the raw samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteship.types import ReportMixin, to_jsonable

PERCENTILES = (50, 90, 95, 99)

_TIMED = {  # BenchEntry.timed -> what one measured run is, in words
    "invoke": "the interpreter's invoke alone, inputs set before the timer (as LiteRT's benchmark tools)",
    "infer": "one Runner.infer call (feed check, set inputs, run, get outputs)",
    "run": "CompiledModel's run alone, inputs written before the timer (as benchmark_litert_model.py)",
    "run+read": "CompiledModel's run plus reading every output (the read waits for the accelerator)",
}


@dataclass(frozen=True)
class LatencyStats(ReportMixin):
    """Summary of latency samples, in milliseconds.

    Percentiles interpolate linearly between the two nearest samples (numpy's default, and what
    LiteRT's ``benchmark_litert_model.py`` does); ``std`` is the sample standard deviation.
    """

    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan)
        p50, p90, p95, p99 = (float(v) for v in np.percentile(a, PERCENTILES))
        return cls(
            count=int(a.size),
            mean_ms=float(a.mean()),
            std_ms=float(a.std(ddof=1)) if a.size > 1 else 0.0,
            min_ms=float(a.min()),
            p50_ms=p50,
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=float(a.max()),
        )


@dataclass(frozen=True)
class BenchEntry(ReportMixin):
    """One model at one thread count.

    Attributes:
        model: The label shown in tables (the path as given, or the runner's name).
        path: The model file, when the model came from a file.
        backend: Which runtime ran it, e.g. ``"ai-edge-litert 2.3.0"``.
        threads: Thread count the runner used (``None`` when the runner does not say).
        inputs: ``"random"`` or the dataset's source.
        timed: What each measured run timed: ``"invoke"``, the interpreter's invoke alone with the inputs
            set before the timer (as LiteRT's benchmark tools); or ``"infer"``, one whole
            ``Runner.infer`` call (feed check, copying inputs in and outputs out).
        init_ms: Load + verify + allocate + delegate, i.e. constructing the runner; ``None`` for a runner
            that was passed in already built.
        first_inference_ms: The first run after init, timed as ``timed`` says (it also counts as the
            first warm-up run).
        warmup: Warm-up runs done after init, the first inference included.
        latency: Statistics over the measured runs.
        elapsed_s: Wall-clock time of the measured phase (with a dataset and ``timed="invoke"``, setting
            each sample's inputs between runs included).
        throughput: Measured runs per second of wall clock (one stream, one inference at a time).
        model_size_bytes: Size of the model file (or buffer).
        rss_delta_bytes: Growth of the process's resident memory across init and the runs (weights,
            arena, delegate-packed weights, and for the first entry the runtime's one-time setup). Only
            pages the process had not touched count: freed memory is handed back to the OS before each
            entry where the C library allows (glibc), else an entry reusing pages an earlier one freed
            reads ~0. Never below 0.
        peak_rss_bytes: The process's peak resident memory (VmHWM) after this entry ran. It is a
            high-water mark for the whole process, so it never decreases from one entry to the next.
        samples_ms: Every measured latency, in run order (left out of ``to_dict()`` unless asked).
        accelerator: What the CompiledModel runner compiled for (e.g. ``"gpu,cpu"``, or ``"cpu"`` after a
            fallback); ``None`` for the Interpreter.
        fully_accelerated: LiteRT's ``is_fully_accelerated()`` for that accelerator; ``None`` otherwise.
        warnings: What the runner changed to keep going (e.g. a GPU that failed to start).
        tensor_bytes: Bytes of the model's non-constant tensors (activations, inputs, outputs) at the
            allocated shapes, from the interpreter: what the tensor arena must hold, and an upper bound
            of it (tensors whose lifetimes do not overlap share arena memory). Per model and
            deterministic, unlike RSS. ``None`` for runners that do not expose their tensors.
    """

    model: str
    path: str | None
    backend: str
    threads: int | None
    inputs: str
    timed: str
    init_ms: float | None
    first_inference_ms: float
    warmup: int
    latency: LatencyStats
    elapsed_s: float
    throughput: float
    model_size_bytes: int | None
    rss_delta_bytes: int | None
    peak_rss_bytes: int | None
    samples_ms: tuple[float, ...] = field(default=(), repr=False)
    tensor_bytes: int | None = None
    accelerator: str | None = None
    fully_accelerated: bool | None = None
    warnings: tuple[str, ...] = ()

    @property
    def runs(self) -> int:
        return self.latency.count

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        d = to_jsonable(self)
        d["runs"] = self.runs
        if not samples:
            del d["samples_ms"]
        return d


@dataclass(frozen=True)
class BenchReport(ReportMixin):
    """The result of :func:`liteship.benchmark`: one entry per model × thread count, in that order.

    Attributes:
        entries: The measurements.
        runs: Minimum measured runs per entry that was asked for.
        warmup: Warm-up runs asked for.
        min_seconds: Minimum measured seconds per entry asked for.
        measure: What was asked to be timed for LiteRT runners (``"invoke"`` or ``"infer"``); each
            entry's ``timed`` says what was timed for it.
        machine: CPU count, platform, Python version, processor.
    """

    entries: tuple[BenchEntry, ...]
    runs: int
    warmup: int
    min_seconds: float
    measure: str = "invoke"
    machine: dict[str, Any] = field(default_factory=dict)

    def timed_note(self) -> str:
        """One sentence saying what a latency is, for the CLI footnote and the HTML page."""
        kinds = {e.timed for e in self.entries}
        if len(kinds) == 1:
            return f"latency = {_TIMED[kinds.pop()]}."
        return "latency = " + "; ".join(f"{_TIMED[k]} where timed is {k}" for k in sorted(kinds)) + "."

    def entry(self, model: str, threads: int | None = None, accelerator: str | None = None) -> BenchEntry:
        """The entry for ``model`` (its label or path) and, when given, ``threads`` and ``accelerator``."""
        for e in self.entries:
            if (
                model in (e.model, e.path)
                and (threads is None or e.threads == threads)
                and (accelerator is None or e.accelerator == accelerator)
            ):
                return e
        have = ", ".join(f"{e.model}@{e.threads}" for e in self.entries)
        raise KeyError(f"no entry for {model!r} with threads={threads}; entries: {have}")

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        """JSON-ready dict; ``samples=True`` keeps every entry's raw latencies."""
        return {
            "entries": [e.to_dict(samples=samples) for e in self.entries],
            "runs": self.runs,
            "warmup": self.warmup,
            "min_seconds": self.min_seconds,
            "measure": self.measure,
            "machine": to_jsonable(self.machine),
        }


__all__ = ["BenchReport", "BenchEntry", "LatencyStats"]
