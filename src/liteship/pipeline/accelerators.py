"""(variant, accelerator) pairs: every CompiledModel accelerator in ``bench.accelerators`` is a candidate.

For each converted variant and each accelerator of the list other than the Interpreter (``null``), the
pipeline runs the validation set through the variant on that accelerator and times it there — in a
child process without TensorFlow when the accelerator is a GPU (:mod:`liteship.bench.isolated`) — then
compares those outputs with the reference using the same ``validate()`` as every variant (GPU kernels
may compute in float16: the error, agreement and SQNR show it). The pair goes through the same gates,
and selection picks the best pair. An accelerator that cannot compile a variant (no device, rejected
ops, dynamic shapes) is recorded on that pair with the reason; the run goes on.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from liteship.bench.core import machine_info
from liteship.bench.isolated import BenchSettings, needs_isolation, run_isolated
from liteship.bench.on_accelerator import run_on_accelerator
from liteship.bench.report import BenchReport
from liteship.errors import LiteshipError
from liteship.pipeline.context import QUICK_RUNS, RunContext
from liteship.pipeline.variant import AcceleratorPair, with_pair
from liteship.runtime.litert import LiteRTRunner
from liteship.runtime.recorded import RecordedRunner
from liteship.types import TensorSpec
from liteship.validate.comparator import feed_for


def pair_accelerators(configured: list[str | None]) -> list[str]:
    """The non-Interpreter accelerators of ``bench.accelerators``."""
    return [a for a in configured if a is not None]


def measure_pairs(
    run: RunContext, name: str, path: Path, limit: int | None, quick: bool
) -> tuple[AcceleratorPair, ...]:
    """Validate and benchmark variant ``name`` on every configured accelerator (see the module docstring).

    Args:
        run: The pipeline run's context: its config, ``validation_data()`` and ``validate()``.
        name: The variant.
        path: Its .tflite file.
        limit: Validate on at most this many samples (pruned variants), else all.
        quick: A quick benchmark (pruned variants).
    """
    accels = pair_accelerators(list(run.cfg.bench.accelerators))
    if not accels:
        return ()

    data = run.validation_data()
    samples = [x for x, _ in data][: limit or len(data)]
    with LiteRTRunner(path) as specs:
        inputs = feed_for(specs, samples)
        in_specs = specs.input_specs
    pairs = []
    for accel in accels:
        pair = run.timed(
            "accelerators", partial(_measure_one, run, path, accel, inputs, in_specs, limit, quick)
        )
        pairs.append(pair)
        if pair.error is not None:
            run.log(f"[yellow]accel    {name:<16} {accel}: not available[/] — {pair.error}")
            continue
        assert pair.validation is not None
        nums = pair.validation.summary()
        e = pair.bench.entries[-1] if pair.bench and pair.bench.entries else None
        run.log(
            f"accel    {name:<16} on {pair.ran_on}: agreement {_pct(nums['agreement_top1'])}  "
            f"SQNR {_num(nums['sqnr_db'])} dB  max|err| {_num(nums['max_abs_error'], 'g')}"
            + (f"  p50 {e.latency.p50_ms:.3f} ms" if e else "")
        )
    return tuple(pairs)


def _measure_one(
    run: RunContext,
    path: Path,
    accel: str,
    inputs: dict[str, Any],
    in_specs: Any,
    limit: int | None,
    quick: bool,
) -> AcceleratorPair:
    b = run.cfg.bench
    settings = BenchSettings(
        threads=tuple(run.threads) or (None,),
        runs=QUICK_RUNS if quick else b.runs,
        warmup=1 if quick else b.warmup,
        min_seconds=0.0 if quick else b.min_seconds,
    )
    on = run_isolated if needs_isolation(accel) else run_on_accelerator
    try:
        r = on(path, accel, inputs=inputs, bench=settings)
    except LiteshipError as e:  # the child process died
        return AcceleratorPair(accel, error=e.message)
    if r.error is not None or r.outputs is None:
        return AcceleratorPair(accel, ran_on=r.ran_on, error=r.error or "no outputs came back")
    candidate = RecordedRunner(
        inputs,
        r.outputs,
        input_specs=in_specs,
        output_specs=[TensorSpec(k, (-1, *v.shape[1:]), str(v.dtype)) for k, v in r.outputs.items()],
        backend=r.backend + (" (in a child process without TensorFlow)" if r.isolated else ""),
        name=f"{path.name} on {r.ran_on}",
        warnings=r.warnings,
        model_bytes=path.read_bytes(),
    )
    try:
        validation = run.validate(candidate, limit=limit, quiet=True)
    except LiteshipError as e:
        return AcceleratorPair(accel, ran_on=r.ran_on, error=f"validation failed to run: {e.message}")
    bench = BenchReport(
        entries=r.entries,
        runs=settings.runs,
        warmup=settings.warmup,
        min_seconds=settings.min_seconds,
        machine=machine_info(),
    )
    return AcceleratorPair(accel, r.ran_on, r.fully_accelerated, bench, validation)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _num(v: float | None, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


__all__ = ["AcceleratorPair", "measure_pairs", "pair_accelerators", "with_pair"]
