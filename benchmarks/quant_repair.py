"""Integer models that keep their accuracy, on the outlier-channel digits CNN (issue 9's table).

Builds the fixture model (``tests/conftest.py::build_outlier_cnn``: conv c1's output channel 0 is 1000×
the others, c2 divides it back), then measures on the 397 held-out digits with LiteRT:

* float32; liteship plain int8; ai-edge-quantizer static int8 (the reference tool, if installed), alone
  and with c1/c2 kept float by hand; cross-layer equalization then int8 (``convert(equalize=True)``);
* the liteship pipeline with accuracy repair (default: graph fixes first) and with ``repair: []`` (the
  search alone), with wall times, float-layer counts and the minimality proof;
* the plain pipeline on the same config (repair off) for the overhead ratio.

    python benchmarks/quant_repair.py [--json]

``--passing`` measures the other case instead: the plain digits CNN (``build_digits_cnn``), whose int8
variant passes the gates, through the pipeline with accuracy repair off and on, ``--rounds`` times each
alternating: wall times side by side, and that no fix or search ran.

    python benchmarks/quant_repair.py --passing [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _fixture_builder(name: str = "build_outlier_cnn"):
    spec = importlib.util.spec_from_file_location("liteship_test_conftest", REPO / "tests" / "conftest.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(x))
    x, y = x[idx], y[idx]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _predict(model: bytes, x: np.ndarray) -> np.ndarray:
    from liteship.runtime import LiteRTRunner

    with LiteRTRunner(model) as r:
        return np.concatenate([next(iter(r.infer(x[i : i + 1]).values())) for i in range(len(x))])


def _row(name: str, model: bytes, x, y, ref_pred, floats: str) -> dict:
    pred = _predict(model, x).argmax(1)
    return {
        "method": name,
        "accuracy": float((pred == y).mean()),
        "agreement": float((pred == ref_pred).mean()),
        "float_layers": floats,
        "size_kib": len(model) / 1024,
    }


def _aeq(float_tflite: bytes, calib: np.ndarray, keep_float: tuple[str, ...] = ()) -> bytes | None:
    try:
        from ai_edge_quantizer import quantizer, recipe
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
    except ImportError:
        return None
    qt = quantizer.Quantizer(float_tflite, recipe.static_wi8_ai8())
    for layer in keep_float:
        qt.update_quantization_recipe(f".*/{layer}_1/.*", "*", algorithm_key=AlgorithmName.NO_QUANTIZE)
    from liteship.runtime import LiteRTRunner

    with LiteRTRunner(float_tflite) as r:
        name = r.input_specs[0].name
    key = name.split("serving_default_")[-1].split(":")[0]
    data = {"serving_default": [{key: s[None]} for s in calib]}
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a size summary
        return bytes(qt.quantize(qt.calibrate(data)).quantized_model)


def _pipeline(folder: Path, keras: Path, calib: Path, val: Path, amp: dict | None) -> tuple[object, float]:
    from liteship.pipeline import run_pipeline

    cfg = {
        "source": str(keras),
        "model_id": "outlier",
        "recipes": ["none", "int8"],
        "io_type": "int8",
        "calibration": {"data": str(calib), "samples": 200},
        "validation": {"data": str(val)},
        "bench": {"threads": [1], "runs": 50, "min_seconds": 0.2},
        "gates": {"max_accuracy_drop": 0.5, "min_agreement": 0.98},
        "objective": "size",
        "auto_mixed_precision": amp or {"enabled": False},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "liteship.yaml").write_text(yaml.safe_dump(cfg))
    t = time.perf_counter()
    report = run_pipeline(folder / "liteship.yaml", log=lambda _: None, progress=False, raise_on_gate=False)
    return report, time.perf_counter() - t


def _passing(rounds: int) -> dict:
    """A model whose int8 variant already passes: repair on costs one gate check, nothing else."""
    xt, yt, xv, yv = _digits()
    work = Path(tempfile.mkdtemp(prefix="liteship-quant-passing-"))
    keras_path = work / "digits.keras"
    _fixture_builder("build_digits_cnn")(xt, yt).save(keras_path)
    np.save(work / "calib.npy", xt[:200])
    np.savez(work / "val.npz", x=xv, y=yv)
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    verdict = None
    for i in range(rounds):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            amp = {"enabled": True, "recipe": "int8"} if mode == "on" else None
            report, t = _pipeline(work / f"{mode}{i}", keras_path, work / "calib.npy", work / "val.npz", amp)
            seconds[mode].append(round(t, 2))
            if mode == "on":
                mp = report.mixed_precision
                verdict = {
                    "int8_passes": bool(report.variant("int8").gates_passed),
                    "skipped": mp.skipped if mp else None,
                    "attempts": len(mp.attempts) if mp else 0,
                    "search": bool(mp and mp.search),
                    "variants": [v.recipe for v in report.variants],
                }
    median = {k: sorted(v)[len(v) // 2] for k, v in seconds.items()}
    return {"seconds": seconds, "median": median, "ratio": median["on"] / median["off"], "repair": verdict}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--passing", action="store_true", help="the model whose int8 already passes")
    ap.add_argument("--rounds", type=int, default=3, help="with --passing: runs per mode, alternating")
    args = ap.parse_args()
    if args.passing:
        print(json.dumps(_passing(args.rounds), indent=2))
        return 0
    from liteship.convert import convert

    xt, yt, xv, yv = _digits()
    work = Path(tempfile.mkdtemp(prefix="liteship-quant-repair-"))
    model = _fixture_builder()(xt, yt)
    keras_path = work / "outlier.keras"
    model.save(keras_path)
    np.save(work / "calib.npy", xt[:200])
    np.savez(work / "val.npz", x=xv, y=yv)
    calib = work / "calib.npy"
    f32 = convert(str(keras_path), quantize="none", progress=False).model_bytes
    ref_pred = _predict(f32, xv).argmax(1)
    rows = [_row("float32", f32, xv, yv, ref_pred, "all")]
    plain = convert(str(keras_path), quantize="int8", calibration=calib, progress=False).model_bytes
    rows.append(_row("liteship int8 (TF converter)", plain, xv, yv, ref_pred, "0"))
    aeq = _aeq(f32, xt[:200])
    if aeq is not None:
        rows.append(_row("ai-edge-quantizer static int8", aeq, xv, yv, ref_pred, "0"))
        by_hand = _aeq(f32, xt[:200], ("c1", "c2"))
        if by_hand is not None:
            rows.append(_row("ai-edge-quantizer, c1+c2 float by hand", by_hand, xv, yv, ref_pred, "2"))
    eq = convert(str(keras_path), quantize="int8", calibration=calib, equalize=True, progress=False)
    rows.append(_row("liteship int8 + equalize", eq.model_bytes, xv, yv, ref_pred, "0"))
    diff = eq.graph_fixes["equalize"]["max_abs_diff"]

    runs = {}
    for label, amp in (
        ("plain pipeline (repair off)", None),
        ("pipeline, repair (graph fixes first)", {"enabled": True, "recipe": "int8"}),
        ("pipeline, search only (repair: [])", {"enabled": True, "recipe": "int8", "repair": []}),
    ):
        report, seconds = _pipeline(
            work / label.split()[0] / str(len(runs)), keras_path, calib, work / "val.npz", amp
        )
        mp = report.mixed_precision
        winner = report.variant(mp.recipe) if mp and mp.recipe else None
        runs[label] = {
            "seconds": round(seconds, 1),
            "chosen": report.chosen,
            "repaired": mp.recipe if mp else None,
            "accuracy": winner.accuracy if winner else None,
            "agreement": winner.agreement_top1 if winner else None,
            "float_layers": [n.split(";")[0] for n in mp.float_layers] if mp else [],
            "search_rounds": len(mp.search["rounds"]) if mp and mp.search else 0,
            "minimal": mp.search["minimal"] if mp and mp.search else None,
            "cost": mp.cost.to_dict() if mp and mp.cost else None,
        }
    out = {"table": rows, "equalize_max_abs_diff": diff, "pipeline": runs}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'method':<42} {'accuracy':>9} {'agreement':>10} {'float layers':>13} {'KiB':>7}")
    for r in rows:
        print(
            f"{r['method']:<42} {100 * r['accuracy']:8.1f}% {100 * r['agreement']:9.1f}% "
            f"{r['float_layers']:>13} {r['size_kib']:7.1f}"
        )
    print(f"equalization: max |float out − equalized float out| = {diff:.2e}")
    for label, r in runs.items():
        acc = f"{100 * r['accuracy']:.1f}%" if r["accuracy"] is not None else "–"
        print(
            f"{label:<40} {r['seconds']:6.1f} s  repaired={r['repaired']}  accuracy={acc}  "
            f"float={r['float_layers']}  rounds={r['search_rounds']}  minimal={r['minimal']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
