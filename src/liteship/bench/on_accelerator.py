"""Work on one accelerator in this process: compile a .tflite for it, run a batch of inputs (validation)
and/or time it with ``benchmark()`` (bench). :func:`~liteship.bench.isolated.run_isolated` runs the same
in a child process without TensorFlow (its child calls :func:`child_main`); see ``bench/isolated.py``.

This module sits above both ``bench/core.py`` and ``bench/isolated.py`` (it uses the one timing loop of
``benchmark()``), so neither imports the other back."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from liteship.bench.core import benchmark
from liteship.bench.isolated import AcceleratorRun, BenchSettings
from liteship.errors import LiteshipError
from liteship.runtime.compiled import CompiledModelRunner

CHUNK = 64  # samples per infer() call in a validation run


def run_on_accelerator(
    model: str | Path,
    accelerator: str,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    bench: BenchSettings | None = None,
) -> AcceleratorRun:
    """Compile ``model`` for ``accelerator`` in this process; run ``inputs`` and/or benchmark it.

    Args:
        model: The .tflite file.
        accelerator: A CompiledModel accelerator (``"cpu"``, ``"gpu"``, ``"gpu,cpu"``, ``"auto"``…).
        inputs: ``{input name: stacked samples}``; outputs come back stacked the same way.
        bench: Also time it (the same ``benchmark()`` as ``liteship bench``).

    Returns:
        An :class:`AcceleratorRun`; ``error`` is set when the accelerator cannot compile or run it.
    """
    try:
        runner = CompiledModelRunner(model, accelerator=accelerator)
    except LiteshipError as e:
        return AcceleratorRun(accelerator, error=e.message)
    outputs: dict[str, np.ndarray] | None = None
    try:
        with runner:
            if inputs:
                n = len(next(iter(inputs.values())))
                parts = [
                    runner.infer({k: v[i : i + CHUNK] for k, v in inputs.items()}) for i in range(0, n, CHUNK)
                ]
                outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
            base = AcceleratorRun(
                accelerator,
                ran_on=runner.accelerator,
                fully_accelerated=runner.is_fully_accelerated(),
                backend=runner.backend,
                outputs=outputs,
                warnings=tuple(runner.warnings),
            )
    except LiteshipError as e:
        return AcceleratorRun(accelerator, ran_on=runner.accelerator, error=e.message)
    if bench is None:
        return base
    try:
        report = benchmark(
            [model], threads=bench.threads, runs=bench.runs, warmup=bench.warmup,
            min_seconds=bench.min_seconds, data=bench.data, measure=bench.measure,  # type: ignore[arg-type]
            progress=False, accelerators=(accelerator,),
        )  # fmt: skip
    except LiteshipError as e:
        return AcceleratorRun(accelerator, ran_on=base.ran_on, error=f"benchmark failed: {e.message}")
    return dataclasses.replace(base, entries=report.entries)


def child_main(raw: str) -> None:
    """The child's side of :func:`~liteship.bench.isolated.run_isolated`: run, write the outputs, print the result as JSON."""
    args = json.loads(raw)
    inputs = None
    if args.get("inputs"):
        with np.load(args["inputs"]) as z:
            inputs = {name: z[f"i{n}"] for n, name in enumerate(args["input_names"])}
    b = args.get("bench")
    bench = BenchSettings(**{**b, "threads": tuple(b["threads"])}) if b else None
    run = run_on_accelerator(args["model"], args["accelerator"], inputs=inputs, bench=bench)
    names = None
    if run.outputs is not None and args.get("outputs"):
        names = list(run.outputs)
        np.savez(args["outputs"], **{f"o{n}": run.outputs[k] for n, k in enumerate(names)})  # type: ignore[arg-type]
    result = {
        "ran_on": run.ran_on, "fully_accelerated": run.fully_accelerated, "backend": run.backend,
        "outputs": names, "entries": [e.to_dict(samples=True) for e in run.entries],
        "warnings": list(run.warnings), "error": run.error,
    }  # fmt: skip
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


__all__ = ["CHUNK", "child_main", "run_on_accelerator"]
