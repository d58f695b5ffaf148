"""Profile jobs on the device: per-op timing, where each op ran, load time, first inference, peak memory.

ai-edge-litert 2.3's Python API has no op profiler: the ``Interpreter`` takes
``experimental_op_resolver_type`` and ``experimental_preserve_all_tensors`` but returns no per-op
timings, and the ``CompiledModel`` API exposes none either (the C++ ``benchmark_model`` tool has
``--enable_op_profiling``; a device does not have it). So a profile job times each op *on its own*:
the op is cut out into a one-op model (:func:`liteship.runtime.blame.op_range_model`, the sub-models
the accelerator blame uses), run by the same LiteRT Interpreter with the same threads and XNNPACK as
the variant, with ``invoke`` timed alone (inputs set once, as LiteRT's benchmark tools do). Each row
says whether XNNPACK took that op (``XNNPACK``) or the builtin kernel ran it (``CPU``).

The per-op total is compared with the whole model's median invoke, measured in the same job; the
difference (XNNPACK fusing neighbouring ops, cache effects, per-invoke overhead) is reported, not
hidden. An op that cannot run alone on made-up inputs (a RESHAPE whose shape other ops compute) is
listed as ``not alone`` with 0 ms. Every run is one step between frames of the live model (:class:`~liteship.agent.pacing.Pacer`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from liteship.agent.pacing import JobStopped, Pacer
from liteship.errors import LiteshipError

MAX_OPS = 2000  # as the server's


def _inputs(runner: Any) -> dict[str, np.ndarray]:
    """Deterministic inputs in each input's own dtype (the timing of the ops here does not depend on
    the values)."""
    rng = np.random.default_rng(0)
    feed = {}
    for s in runner.input_specs:
        shape = tuple(max(int(d), 1) for d in s.shape)
        dtype = np.dtype(s.dtype)
        if dtype.kind == "f":
            feed[s.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            feed[s.name] = rng.integers(max(info.min, -100), min(info.max, 100), shape).astype(dtype)
        else:
            feed[s.name] = np.zeros(shape, dtype=dtype)
    return feed


def _time(runner: Any, runs: int, pacer: Pacer) -> tuple[float, float]:
    """``(first invoke ms, median invoke ms of ``runs``)``, each invoke one step between frames."""
    runner.set_inputs(_inputs(runner))
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        runner.invoke()
        ms = (time.perf_counter() - t) * 1000.0
        times.append(ms)
        pacer(ms)
    return times[0], statistics.median(times[1:])


def _ran_on(runner: Any) -> str:
    usage = {u.name: u for u in runner.delegate_summary()}
    xnn = usage.get("XNNPACK")
    return "XNNPACK" if xnn is not None and xnn.nodes else "CPU"


def run_profile(name: str, path: Path, *, pacer: Pacer, num_threads: int | None, runs: int) -> dict[str, Any]:
    """The profile of one variant (a result row of the job's report), or its error."""
    from liteship.bench.memory import current_rss_bytes, peak_rss_bytes
    from liteship.model.flatbuffer import load_model
    from liteship.runtime import LiteRTRunner
    from liteship.runtime.blame import op_range_model, op_type

    runs = max(1, min(runs, 200))
    try:
        loaded = load_model(path)
        before = current_rss_bytes()
        with pacer:
            t0 = time.perf_counter()
            runner = LiteRTRunner(str(path), num_threads=num_threads, raw=True)
            load_ms = (time.perf_counter() - t0) * 1000.0
            rss_delta = (current_rss_bytes() or 0) - (before or 0) if before is not None else None
            try:
                first_ms, invoke_ms = _time(runner, runs, pacer)
                delegated = sum(u.nodes or 0 for u in runner.delegate_summary())
            finally:
                runner.close()
            n_ops = len(loaded.model.subgraphs[0].operators or [])
            rows = []
            for i in range(min(n_ops, MAX_OPS)):
                op = op_type(loaded, i)[:100]
                try:
                    one = LiteRTRunner(op_range_model(loaded, i, i + 1), num_threads=num_threads, raw=True)
                except LiteshipError as e:  # an op that does not run alone (e.g. needs a state): said so
                    rows.append(
                        {"index": i, "op": op, "ran_on": "not alone", "ms": 0.0, "error": str(e)[:200]}
                    )
                    continue
                try:
                    _, ms = _time(one, runs, pacer)
                    rows.append({"index": i, "op": op, "ran_on": _ran_on(one), "ms": ms})
                except (
                    LiteshipError
                ) as e:  # e.g. a RESHAPE whose shape another op computes: not on made-up inputs
                    rows.append(
                        {"index": i, "op": op, "ran_on": "not alone", "ms": 0.0, "error": str(e)[:200]}
                    )
                finally:
                    one.close()
    except JobStopped:
        raise
    except LiteshipError as e:
        return {"name": name, "ok": False, "error": str(e)[:1000]}
    except Exception as e:  # noqa: BLE001 - a bad variant must never stop the agent
        return {"name": name, "ok": False, "error": f"{type(e).__name__}: {e}"[:1000]}
    return {
        "name": name,
        "ok": True,
        "threads": num_threads,
        "init_ms": load_ms,
        "load_ms": load_ms,
        "first_inference_ms": first_ms,
        "invoke_ms": invoke_ms,
        "p50_ms": invoke_ms,
        "runs": runs,
        "ops_total_ms": sum(r["ms"] for r in rows),
        "ops": rows,
        "delegated_nodes": delegated,
        "rss_delta_bytes": max(rss_delta, 0) if rss_delta is not None else None,
        "peak_rss_bytes": peak_rss_bytes(),
        "accelerator": "cpu",
    }


__all__ = ["run_profile", "MAX_OPS"]
