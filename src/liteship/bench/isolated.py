"""Work on an accelerator in a fresh process without TensorFlow.

LiteRT 2.3's GPU accelerator crashes a process that has imported TensorFlow, and the workstation side
(the pipeline, notebooks) usually has. One mechanism covers everything that must run on such an
accelerator there: :func:`liteship.bench.on_accelerator.run_on_accelerator` compiles a .tflite for one accelerator, runs a batch of
inputs through it (validation), and/or times it with the same ``benchmark()`` (bench), and
:func:`run_isolated` does exactly that in a child interpreter, handing back the result (JSON for the
figures, ``.npz`` for the outputs). What is run or timed, and how, is unchanged; only the process differs.

An accelerator that cannot compile the model (it fails to initialise, rejects ops, or needs static
shapes) is not a failed run: :attr:`AcceleratorRun.error` says why, and the caller records it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.bench.report import BenchEntry, LatencyStats
from liteship.errors import BenchmarkError, UsageError

_CHILD = "import sys; from liteship.bench.on_accelerator import child_main; child_main(sys.argv[1])"


@dataclass(frozen=True)
class BenchSettings:
    """What :func:`~liteship.bench.benchmark` takes for one accelerator (see its arguments)."""

    threads: tuple[int | None, ...] = (None,)
    runs: int = 50
    warmup: int = 5
    min_seconds: float = 1.0
    data: str | None = None
    measure: str = "invoke"


@dataclass(frozen=True)
class AcceleratorRun:
    """What one accelerator did with one model.

    Attributes:
        accelerator: What was asked for (``"gpu"``, ``"gpu,cpu"``…).
        ran_on: What LiteRT compiled for in the end (``"cpu"`` after a fallback); ``None`` when it
            could not compile.
        fully_accelerated: LiteRT's ``is_fully_accelerated()``.
        backend: The runner's backend string.
        outputs: ``{output name: stacked outputs}`` for the inputs given, else ``None``.
        entries: Benchmark entries, one per thread count, when a benchmark was asked for.
        warnings: What the runner changed to keep going (a fallback, per-sample batches).
        error: Why the accelerator could not compile or run the model; then nothing else is set.
        isolated: Whether it ran in a child process.
    """

    accelerator: str
    ran_on: str | None = None
    fully_accelerated: bool | None = None
    backend: str = ""
    outputs: dict[str, np.ndarray] | None = field(default=None, repr=False)
    entries: tuple[BenchEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None
    isolated: bool = False


def needs_isolation(accelerator: str | None) -> bool:
    """Whether work on ``accelerator`` must run in a child process here."""
    return (
        accelerator is not None
        and ("gpu" in accelerator or accelerator == "auto")
        and ("tensorflow" in sys.modules)
    )


def run_isolated(
    model: str | Path | bytes,
    accelerator: str,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    bench: BenchSettings | None = None,
) -> AcceleratorRun:
    """:func:`liteship.bench.on_accelerator.run_on_accelerator` in a child process without TensorFlow (see the module docstring).

    Raises:
        BenchmarkError: The child process died (a crash, not an accelerator that cannot compile the
            model: that comes back as :attr:`AcceleratorRun.error`).
    """
    with tempfile.TemporaryDirectory(prefix="liteship-accel-") as tmp:
        path = Path(model) if not isinstance(model, (bytes, bytearray)) else Path(tmp) / "model.tflite"
        if isinstance(model, (bytes, bytearray)):
            path.write_bytes(bytes(model))
        args: dict[str, Any] = {"model": str(path), "accelerator": accelerator, "outputs": None}
        if inputs:
            args["inputs"] = str(Path(tmp) / "inputs.npz")
            args["outputs"] = str(Path(tmp) / "outputs.npz")
            np.savez(args["inputs"], **{f"i{n}": v for n, v in enumerate(inputs.values())})  # type: ignore[arg-type]
            args["input_names"] = list(inputs)
        if bench is not None:
            args["bench"] = {**bench.__dict__, "threads": list(bench.threads)}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(args)],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
            raise BenchmarkError(
                f"the {accelerator} run of {path.name} failed in its child process (exit code "
                f"{out.returncode}): {last}",
                hint=f"Run `liteship bench {path} --accelerator {accelerator}` to see the whole error.",
            )
        d = json.loads(out.stdout.strip().splitlines()[-1])
        outputs = None
        if d["outputs"] is not None:
            with np.load(args["outputs"]) as z:
                outputs = {name: z[f"o{n}"] for n, name in enumerate(d["outputs"])}
    src = model if not isinstance(model, (bytes, bytearray)) else bytes(model)
    return AcceleratorRun(
        accelerator,
        ran_on=d["ran_on"],
        fully_accelerated=d["fully_accelerated"],
        backend=d["backend"],
        outputs=outputs,
        entries=tuple(_entry(e, src) for e in d["entries"]),
        warnings=tuple(d["warnings"]),
        error=d["error"],
        isolated=True,
    )


def bench_isolated(
    src: str | Path | bytes,
    accelerator: str,
    threads: int | None,
    runs: int,
    warmup: int,
    min_seconds: float,
    data: Any,
    measure: str,
) -> BenchEntry:
    """Time one benchmark entry in a child process (see the module docstring).

    Raises:
        UsageError: ``data`` is not a file path (an in-memory dataset cannot cross the process boundary).
        BenchmarkError: The child failed, or the accelerator could not run the model; the message says why.
    """
    if data is not None and not isinstance(data, (str, Path)):
        raise UsageError(
            "a GPU benchmark in a process that has imported TensorFlow runs in a child process, which "
            "takes data as a file path only.",
            hint="Pass data as a .npy/.npz/image-folder path, or run the benchmark without TensorFlow loaded.",
        )
    settings = BenchSettings(
        (threads,), runs, warmup, min_seconds, None if data is None else str(data), measure
    )
    run = run_isolated(src, accelerator, bench=settings)
    if run.error is not None or not run.entries:
        label = src if not isinstance(src, (bytes, bytearray)) else "the model"
        raise BenchmarkError(
            f"the {accelerator} benchmark of {label} failed in its child process: {run.error}",
            hint="Run `liteship bench MODEL --accelerator ...` to see the whole error.",
        )
    return run.entries[0]


def _entry(d: dict[str, Any], src: str | Path | bytes) -> BenchEntry:
    def num(v: Any) -> float:
        return math.nan if v is None else float(v)

    lat = LatencyStats(**{k: (int(v) if k == "count" else num(v)) for k, v in d["latency"].items()})  # type: ignore[arg-type]
    fields = {f for f in BenchEntry.__dataclass_fields__}
    kw = {k: v for k, v in d.items() if k in fields and k not in ("latency", "samples_ms", "warnings")}
    kw["model"] = str(src) if isinstance(src, (str, Path)) else kw["model"]
    kw["path"] = str(src) if isinstance(src, (str, Path)) else None
    for k in ("throughput", "elapsed_s", "first_inference_ms"):
        kw[k] = num(kw.get(k))
    return BenchEntry(
        **kw,
        latency=lat,
        samples_ms=tuple(d.get("samples_ms") or ()),
        warnings=(
            *d.get("warnings", ()),
            "timed in a child process without TensorFlow (see bench/isolated).",
        ),
    )


__all__ = [
    "AcceleratorRun",
    "BenchSettings",
    "bench_isolated",
    "needs_isolation",
    "run_isolated",
]
