"""One benchmark entry in a fresh process without TensorFlow.

LiteRT 2.3's GPU accelerator crashes a process that has imported TensorFlow, and the workstation side
(the pipeline, notebooks) usually has. :func:`~liteship.bench.benchmark` then times GPU entries here: a
child interpreter runs the same ``benchmark()`` on the model file for that one accelerator and thread
count, and hands back the entry as JSON. What is timed, and how, is unchanged; only the process differs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from liteship.bench.report import BenchEntry, LatencyStats
from liteship.errors import BenchmarkError, UsageError

_CHILD = """
import json, sys
from liteship.bench import benchmark
args = json.loads(sys.argv[1])
report = benchmark([args["model"]], threads=(args["threads"],), runs=args["runs"], warmup=args["warmup"],
                   min_seconds=args["min_seconds"], data=args["data"], measure=args["measure"],
                   progress=False, accelerators=(args["accelerator"],))
print(json.dumps(report.entries[0].to_dict(samples=True)))
"""


def needs_isolation(accelerator: str | None) -> bool:
    """Whether an entry on ``accelerator`` must run in a child process here."""
    return accelerator is not None and "gpu" in accelerator and "tensorflow" in sys.modules


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
    """Time one entry in a child process (see the module docstring).

    Raises:
        UsageError: ``data`` is not a file path (an in-memory dataset cannot cross the process boundary).
        BenchmarkError: The child failed; its last error line is in the message.
    """
    if data is not None and not isinstance(data, (str, Path)):
        raise UsageError(
            "a GPU benchmark in a process that has imported TensorFlow runs in a child process, which "
            "takes data as a file path only.",
            hint="Pass data as a .npy/.npz/image-folder path, or run the benchmark without TensorFlow loaded.",
        )
    with tempfile.TemporaryDirectory(prefix="liteship-bench-") as tmp:
        model = src
        if isinstance(src, (bytes, bytearray)):
            model = Path(tmp) / "model.tflite"
            model.write_bytes(bytes(src))
        args = {
            "model": str(model), "accelerator": accelerator, "threads": threads, "runs": runs,
            "warmup": warmup, "min_seconds": min_seconds, "data": None if data is None else str(data),
            "measure": measure,
        }  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(args)],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        raise BenchmarkError(
            f"the {accelerator} benchmark of {src if not isinstance(src, bytes) else 'the model'} failed "
            f"in its child process: {last}",
            hint="Run `liteship bench MODEL --accelerator ...` to see the whole error.",
        )
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return _entry(d, src)


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


__all__ = ["bench_isolated", "needs_isolation"]
