"""High-bias absorption (issue 9 item 1): int8 with and without ``absorb_high_bias``, side by side.

Three models, each validated with LiteRT against its float Keras model:

* ``fixture`` — the high-bias CNN of ``tests/conftest.py::build_high_bias_cnn`` (c1's bias is 20 on half its
  channels, ReLU, then a valid 3×3 conv): int8 SQNR, top-1 agreement and c1's int8 activation scale on
  the 397 held-out digits; ai-edge-quantizer's static int8 of the same float model as the reference tool.
* ``outlier`` — issue 9's outlier-channel CNN (``tests/conftest.py::build_outlier_cnn``): ``--equalize``
  with and without absorption, accuracy and agreement on the 397 held-out digits.
* ``mobilenet`` — the MobileNetV2 example (``examples/mobilenet/work``, run its ``prepare.py`` first):
  plain int8, ``equalize`` and ``equalize + absorb_high_bias``, top-1 agreement with the Keras model on the
  500 validation images (copy ``examples/mobilenet/work`` rather than linking a folder that may change
  during the run: the reference and the candidates must come from the same model file).

    nice -n 19 python benchmarks/quant_absorb.py [--part fixture --part outlier --part mobilenet] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "mobilenet"
PARTS = ("fixture", "outlier", "mobilenet")


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(mod)
    return mod


def _row(label: str, model: bytes, reference, x, y=None, **extra) -> dict:
    from liteship.validate import validate

    data = {"x": x, "y": y} if y is not None else x
    s = validate(model, reference, data, progress=False).summary()
    return {
        "model": label,
        "sqnr_db": round(s["sqnr_db"], 2),
        "agreement": s["agreement_top1"],
        "accuracy": s.get("accuracy"),
        "size_bytes": len(model),
        **extra,
    }


def _npz(tmp: Path, x, y) -> str:
    p = tmp / "val.npz"
    np.savez(p, x=x, y=y)
    return str(p)


def _fixture(tmp: Path) -> dict:
    from liteship.convert import convert

    test = _module(REPO / "tests" / "conftest.py", "liteship_test_conftest")
    digits = _module(REPO / "benchmarks" / "quant_repair.py", "liteship_bench_quant_repair")
    xt, yt, xv, yv = digits._digits()
    model = test.build_high_bias_cnn()
    calib = xt[:200]
    val = _npz(tmp, xv, yv)
    rows = []
    plain = convert(model, quantize="int8", calibration=calib, progress=False)
    rows.append(
        _row(
            "int8",
            plain.model_bytes,
            model,
            val,
            c1_scale=test.int8_activation_scale(plain.model_bytes, "c1"),
        )
    )
    t = time.perf_counter()
    hb = convert(model, quantize="int8", calibration=calib, absorb_high_bias=True, progress=False)
    rows.append(
        _row(
            "int8 + absorb_high_bias",
            hb.model_bytes,
            model,
            val,
            c1_scale=test.int8_activation_scale(hb.model_bytes, "c1"),
            convert_seconds=round(time.perf_counter() - t, 1),
            fix=hb.graph_fixes["absorb_high_bias"],
        )
    )
    f32 = convert(model, quantize="none", progress=False).model_bytes
    aeq = digits._aeq(f32, calib)
    if aeq is not None:
        rows.append(_row("ai-edge-quantizer static int8", aeq, model, val))
    return {"rows": rows}


def _outlier(tmp: Path) -> dict:
    from liteship.convert import convert

    digits = _module(REPO / "benchmarks" / "quant_repair.py", "liteship_bench_quant_repair")
    xt, yt, xv, yv = digits._digits()
    model = digits._fixture_builder()(xt, yt)
    calib = xt[:200]
    val = _npz(tmp, xv, yv)
    rows = []
    for label, kw in (
        ("int8", {}),
        ("int8 + absorb_high_bias", {"absorb_high_bias": True}),
        ("int8 + equalize", {"equalize": True}),
        ("int8 + equalize + absorb_high_bias", {"equalize": True, "absorb_high_bias": True}),
    ):
        rep = convert(model, quantize="int8", calibration=calib, progress=False, **kw)
        rows.append(_row(label, rep.model_bytes, model, val, fixes=rep.graph_fixes))
    return {"rows": rows}


def _mobilenet(samples: int | None) -> dict:
    from liteship.convert.converter import calibrated_model
    from liteship.pipeline.cache import CachingRunner
    from liteship.quantize.denylist import quantize_calibrated
    from liteship.runtime import reference_runner_for
    from liteship.validate import validate

    cfg = yaml.safe_load((EXAMPLE / "liteship.yaml").read_text())
    src = str(EXAMPLE / cfg["source"])
    kw = {
        "calibration": str(EXAMPLE / cfg["calibration"]["data"]),
        "calibration_samples": cfg["calibration"]["samples"],
        "preprocessing": cfg["preprocessing"],
    }
    ref = CachingRunner(reference_runner_for(src))
    val = str(EXAMPLE / cfg["validation"]["data"])
    rows = []
    for label, fixes in (
        ("int8", {}),
        ("int8 + equalize", {"equalize": True}),
        ("int8 + equalize + absorb_high_bias", {"equalize": True, "absorb_high_bias": True}),
    ):
        t = time.perf_counter()
        cal = calibrated_model(src, quantize="int8", **fixes, **kw)
        model = quantize_calibrated(cal.model, io_type=cal.io_type)
        seconds = time.perf_counter() - t
        s = validate(
            model, ref, val, limit=samples, preprocessing=cfg["preprocessing"], progress=False
        ).summary()
        row = {
            "model": label,
            "agreement": s["agreement_top1"],
            "accuracy": s["accuracy"],
            "sqnr_db": round(s["sqnr_db"], 2),
            "samples": s.get("samples"),
            "build_seconds": round(seconds, 1),
            "fixes": cal.graph_fixes,
        }
        rows.append(row)
        print(
            f"{label:<36} agreement {100 * row['agreement']:.1f} %  SQNR {row['sqnr_db']:.1f} dB",
            file=sys.stderr,
        )
    return {"rows": rows}


def main() -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", action="append", choices=PARTS, help="only these parts (repeatable)")
    ap.add_argument("--samples", type=int, default=None, help="mobilenet: validation samples (all 500)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="liteship-quant-absorb-"))
    out: dict = {}
    for part in args.part or PARTS:
        t = time.perf_counter()
        if part == "fixture":
            out[part] = _fixture(tmp)
        elif part == "outlier":
            out[part] = _outlier(tmp)
        elif not (EXAMPLE / "work" / "mobilenet_v2.keras").exists():
            out[part] = {"error": "run examples/mobilenet/prepare.py first"}
            continue
        else:
            out[part] = _mobilenet(args.samples)
        out[part]["seconds"] = round(time.perf_counter() - t, 1)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    for part, res in out.items():
        print(f"\n{part} ({res.get('seconds')} s)")
        for r in res.get("rows", []):
            acc = f"{100 * r['accuracy']:.1f} %" if r.get("accuracy") is not None else "–"
            print(
                f"  {r['model']:<36} SQNR {r['sqnr_db']:6.2f} dB  agreement {100 * r['agreement']:5.1f} %  accuracy {acc}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
