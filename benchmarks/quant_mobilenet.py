"""Accuracy repair on the MobileNetV2 example: what it ships, at what speed, and what the search costs.

Runs ``examples/mobilenet/liteship.yaml`` (prepare it first: ``python examples/mobilenet/prepare.py``)
twice into a scratch folder: as configured (accuracy repair on) and with ``auto_mixed_precision`` off
(the plain pipeline), and prints wall times, the repaired variant, its agreement and its p50 against
plain int8.

    nice python benchmarks/quant_mobilenet.py [--only-repair] [--json]

``--levers`` measures each accuracy lever on its own instead (no pipeline): plain int8, each activation
range setting, bias correction, equalization with BatchNorm folding, and float-op sets given with
``--keep``; each validated against the Keras model on the example's validation set and benchmarked side
by side (p50 at 1 and 2 threads, alternating the models every round).

    nice python benchmarks/quant_mobilenet.py --levers [--lever mse --lever percentile ...]

``--bench-files a.tflite b.tflite …`` times given models the same way (e.g. a pipeline run's variants).

``--ceiling`` measures the inputs' own limit: the float model with only its input rounded to the int8
input's grid (what the accuracy repair measures first), and with uniform noise of ± one step.

``--source model.keras`` runs any of these on another Keras model of the example's shape (e.g. a model
prepared with other training settings) instead of ``work/mobilenet_v2.keras``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import yaml  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mobilenet"


SOURCE: str | None = None  # --source


def _config() -> dict:
    cfg = yaml.safe_load((EXAMPLE / "liteship.yaml").read_text())
    if SOURCE:
        cfg["source"] = str(Path(SOURCE).resolve())
    return cfg


def _run(amp: bool, out: Path) -> dict:
    from liteship.pipeline import run_pipeline

    cfg = _config()
    cfg["base_dir"] = str(EXAMPLE)
    cfg["output"] = str(out)
    cfg["package"] = {}
    if not amp:
        cfg["auto_mixed_precision"] = {"enabled": False}
    t = time.perf_counter()
    report = run_pipeline(cfg, log=lambda m: print(m, file=sys.stderr), progress=False, raise_on_gate=False)
    seconds = time.perf_counter() - t
    int8 = report.variant("int8")
    mp = report.mixed_precision
    fixed = report.variant(mp.recipe) if mp and mp.recipe else None
    return {
        "seconds": round(seconds, 1),
        "stage_seconds": {k: round(v, 1) for k, v in report.stage_seconds.items()},
        "chosen": report.chosen,
        "int8": {"agreement": int8.agreement_top1, "p50_ms": int8.p50_ms} if int8 else None,
        "repaired": mp.recipe if mp else None,
        "repaired_agreement": fixed.agreement_top1 if fixed else None,
        "repaired_p50_ms": fixed.p50_ms if fixed else None,
        "speed_vs_int8": (int8.p50_ms / fixed.p50_ms) if fixed and int8 and fixed.p50_ms else None,
        "float_layers": [n.split(";")[0] for n in (mp.float_layers if mp else [])],
        "input_ceiling": mp.input_ceiling.to_dict() if mp and mp.input_ceiling else None,
        "repair_io_type": mp.io_type if mp else None,
        "attempts": [a.to_dict() for a in mp.attempts] if mp else [],
        "search": {k: mp.search.get(k) for k in ("label", "probed", "total_ops", "seconds")}
        if mp and mp.search
        else None,
        "rounds": len(mp.search["rounds"]) if mp and mp.search and "rounds" in mp.search else 0,
        "variants": {v.recipe: {"agreement": v.agreement_top1, "p50_ms": v.p50_ms} for v in report.variants},
    }


LEVERS = ("int8", "minmax", "percentile", "mse", "bc", "bc+mse")


def _lever_model(
    lever: str, keep: tuple[str, ...], cache: dict, io_type: str | None = None
) -> tuple[bytes, float, dict]:
    """``(model bytes, seconds to build it, what the fixes reported)`` for one lever."""
    from liteship.convert import convert
    from liteship.convert.converter import calibrated_model
    from liteship.quantize.denylist import quantize_calibrated

    cfg = _config()
    kw = {
        "calibration": str(EXAMPLE / cfg["calibration"]["data"]),
        "calibration_samples": cfg["calibration"]["samples"],
        "preprocessing": cfg["preprocessing"],
    }
    src = str(EXAMPLE / cfg["source"])
    t = time.perf_counter()
    if lever == "int8":  # what the pipeline ships today: one plain conversion
        rep = convert(src, quantize="int8", progress=False, keep_float_layers=keep, **kw)
        return rep.model_bytes, time.perf_counter() - t, {}
    parts = lever.split("+")
    ranges = next((p for p in parts if p in ("minmax", "percentile", "mse")), "minmax")
    fixes = {"equalize": "eq" in parts, "bias_correction": "bc" in parts}
    key = (fixes["equalize"], fixes["bias_correction"], ranges)
    if key not in cache:
        cache[key] = calibrated_model(src, quantize="int8", range_setting=ranges, **fixes, **kw)
    cal = cache[key]
    from liteship.convert.converter import _BUILTINS

    model = quantize_calibrated(
        cal.model,
        io_type=io_type or cal.io_type,
        keep_float_ops=[k for k in keep if k in _BUILTINS],
        keep_float_nodes=[k for k in keep if k not in _BUILTINS],
    )
    return model, time.perf_counter() - t, cal.graph_fixes or {}


def _levers(args: argparse.Namespace) -> dict:
    from liteship.pipeline.cache import CachingRunner
    from liteship.runtime import reference_runner_for
    from liteship.validate import validate

    cfg = _config()
    ref = CachingRunner(reference_runner_for(str(EXAMPLE / cfg["source"])))
    val = str(EXAMPLE / cfg["validation"]["data"])
    keep = tuple(k for k in (args.keep or "").split(",") if k)
    cache: dict = {}
    rows: dict[str, dict] = {}
    models: dict[str, bytes] = {}
    for lever in args.lever or LEVERS:
        name = lever + (f" keep {len(keep)}" if keep and lever != "int8" else "")
        name += f" io {args.io_type}" if args.io_type and lever != "int8" else ""
        model, seconds, fixes = _lever_model(lever, keep if lever != "int8" else (), cache, args.io_type)
        nums = validate(
            model, ref, val, limit=args.samples, preprocessing=cfg["preprocessing"], progress=False
        )
        s = nums.summary()
        models[name] = model
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            (Path(args.save) / f"{name.replace(' ', '_')}.tflite").write_bytes(model)
        rows[name] = {
            "agreement": s["agreement_top1"],
            "accuracy": s["accuracy"],
            "reference_accuracy": s["reference_accuracy"],
            "sqnr_db": s["sqnr_db"],
            "size_bytes": len(model),
            "build_seconds": round(seconds, 1),
            "fixes": fixes,
        }
        print(
            f"{name:<22} agreement {100 * s['agreement_top1']:.1f} %  accuracy {100 * s['accuracy']:.1f} %"
            f"  ({seconds:.1f} s)",
            file=sys.stderr,
        )
    for n, figures in _side_by_side(models, args.bench_rounds, args.runs).items():
        rows[n].update(figures)
    base = rows.get("int8") or next(iter(rows.values()))
    for r in rows.values():
        r["speed_vs_int8_2t"] = round(base["p50_ms_2t"] / r["p50_ms_2t"], 3) if r.get("p50_ms_2t") else None
    return rows


def _ceiling(args: argparse.Namespace) -> dict:
    """The float model on the int8 input's grid, and with ± one step of uniform noise, vs the Keras model."""
    import numpy as np

    from liteship.convert import convert
    from liteship.convert.ops import io_specs
    from liteship.model.flatbuffer import load_model
    from liteship.pipeline.cache import CachingRunner
    from liteship.runtime import LiteRTRunner, reference_runner_for
    from liteship.runtime.input_grid import InputGridRunner
    from liteship.types import TensorSpec
    from liteship.validate import validate

    cfg = _config()
    src = str(EXAMPLE / cfg["source"])
    ref = CachingRunner(reference_runner_for(src))
    val = str(EXAMPLE / cfg["validation"]["data"])
    kw = {
        "calibration": str(EXAMPLE / cfg["calibration"]["data"]),
        "calibration_samples": cfg["calibration"]["samples"],
        "preprocessing": cfg["preprocessing"],
        "progress": False,
    }
    float_model = convert(src, quantize="none", progress=False).model_bytes
    int8 = convert(src, quantize="int8", **kw).model_bytes
    grid = io_specs(load_model(int8))[0][0]

    class _Noise(InputGridRunner):  # ± one grid step of uniform noise instead of the rounding
        rng = np.random.default_rng(0)

        def _infer(self, feed):  # type: ignore[no-untyped-def]
            step = float(grid.scale or 0.0)
            return self.inner.infer(
                {k: (v + self.rng.uniform(-step, step, v.shape)).astype(np.float32) for k, v in feed.items()}
            )

    rows = {}
    for name, runner in (
        ("float32", LiteRTRunner(float_model)),
        ("float32, input on the int8 grid", InputGridRunner(LiteRTRunner(float_model), [grid])),
        (
            "float32, input ± one int8 step of noise",
            _Noise(LiteRTRunner(float_model), [TensorSpec("x", (), "float32")]),
        ),
        ("int8", LiteRTRunner(int8)),
    ):
        s = validate(
            runner, ref, val, limit=args.samples, preprocessing=cfg["preprocessing"], progress=False
        ).summary()
        rows[name] = {"agreement": s["agreement_top1"], "accuracy": s["accuracy"], "sqnr_db": s["sqnr_db"]}
        print(
            f"{name:<42} agreement {100 * s['agreement_top1']:.1f} %  SQNR {s['sqnr_db']:.1f} dB",
            file=sys.stderr,
        )
    rows["int8 input grid"] = {"scale": grid.scale, "zero_point": grid.zero_point, "dtype": grid.dtype}
    return rows


def _side_by_side(models: dict[str, bytes], rounds: int, runs: int) -> dict[str, dict[str, float]]:
    """p50 at 1 and 2 threads, the median over ``rounds`` rounds that each time every model in turn."""
    from liteship.bench import benchmark

    p50: dict[str, dict[int, list[float]]] = {n: {1: [], 2: []} for n in models}
    for _ in range(rounds):
        for n, m in models.items():
            rep = benchmark([m], threads=(1, 2), runs=runs, warmup=5, min_seconds=0.5, progress=False)
            for e in rep.entries:
                p50[n][int(e.threads)].append(e.latency.p50_ms)
    return {
        n: {f"p50_ms_{t}t": round(sorted(v)[len(v) // 2], 3) for t, v in by.items() if v}
        for n, by in p50.items()
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only-repair", action="store_true", help="skip the plain-pipeline run")
    ap.add_argument("--only-plain", action="store_true", help="only the plain-pipeline run")
    ap.add_argument("--bench-files", nargs="+", help=".tflite files to time side by side (alternating)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--levers", action="store_true", help="measure each accuracy lever alone (no pipeline)")
    ap.add_argument("--lever", action="append", choices=LEVERS, help="with --levers: only these (repeat)")
    ap.add_argument(
        "--keep", help="with --levers: comma-separated op types (SOFTMAX) or op output names kept float"
    )
    ap.add_argument("--save", help="with --levers: write each model into this folder")
    ap.add_argument("--io-type", choices=["int8", "uint8", "float32"], help="with --levers: model I/O type")
    ap.add_argument("--samples", type=int, default=None, help="with --levers: validation samples (all)")
    ap.add_argument("--runs", type=int, default=50, help="with --levers: timed runs per model and round")
    ap.add_argument("--bench-rounds", type=int, default=3, help="with --levers: alternating bench rounds")
    ap.add_argument("--ceiling", action="store_true", help="the float model with its input on the int8 grid")
    ap.add_argument(
        "--source", help="another Keras model of the example's shape instead of work/mobilenet_v2.keras"
    )
    args = ap.parse_args()
    global SOURCE
    SOURCE = args.source
    if args.ceiling:
        print(json.dumps(_ceiling(args), indent=2))
        return 0
    if not (EXAMPLE / "work" / "mobilenet_v2.keras").exists():
        print("run examples/mobilenet/prepare.py first", file=sys.stderr)
        return 1
    if args.bench_files:  # e.g. a pipeline run's int8 and repaired variants, timed side by side
        files = {Path(f).name: Path(f).read_bytes() for f in args.bench_files}
        print(json.dumps(_side_by_side(files, args.bench_rounds, args.runs), indent=2))
        return 0
    if args.levers:
        print(json.dumps(_levers(args), indent=2))
        return 0
    work = Path(tempfile.mkdtemp(prefix="liteship-quant-mobilenet-"))
    if args.only_plain:
        print(json.dumps({"plain": _run(False, work / "plain")}, indent=2))
        return 0
    result = {"repair": _run(True, work / "repair")}
    if not args.only_repair:
        result["plain"] = _run(False, work / "plain")
        result["overhead"] = result["repair"]["seconds"] / result["plain"]["seconds"]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
