"""Int8 accuracy repair on real third-party models and real photos (issue 20's table).

Models (``../shared/real-models/`` or ``tests/data/third_party/``, none of them made here):

* Google's float MobileNetV1 0.25 (TOCO-era file, TFLite metadata normalization 127.5/127.5), with its
  quantization-aware-trained uint8 twin as the anchor (``mobilenet_v1_0.25_224_quant.tflite``, raw
  pixels in) and ai-edge-quantizer's static int8 (the reference tool) on the same data;
* MediaPipe's BlazeFace, hand landmark and pose detection float models (legacy flatbuffers).

Photos: the 40 hand photos of ``../shared/real-photos/`` and scikit-image's bundled colour photos, as
``examples/real_mobilenet/prepare.py`` crops and splits them (6 real crops per photo; even photos
calibrate, odd ones validate, so no validation crop comes from a calibration photo). Figures: top-1 agreement with the float model (classifier), output SQNR in dB (every model),
conversion time. Each method is ``liteship.convert(<float file>, quantize="int8", …)``, the path
``liteship convert`` and the pipeline take.

    python benchmarks/real_models.py [--models mobilenet,blazeface,hand,pose] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = {
    "mobilenet": ("mobilenet_v1_0.25_224_1_metadata_1.tflite", 224, "metadata"),
    "blazeface": ("blazeface_face_detection_front_128_float.tflite", 128, (127.5, 127.5)),
    "hand": ("hand_landmark_224_float.tflite", 224, (0.0, 255.0)),
    "pose": ("pose_detection_128_float.tflite", 128, (127.5, 127.5)),
}
TWIN = "mobilenet_v1_0.25_224_quant.tflite"
METHODS = {
    "int8 (plain)": {},
    "+ percentile ranges": {"range_setting": "percentile"},
    "+ mse ranges": {"range_setting": "mse"},
    "+ equalization": {"equalize": True},
    "+ bias correction": {"bias_correction": True},
    "+ AdaRound": {"adaround": True},
    "+ equalization + bias correction": {"equalize": True, "bias_correction": True},
    "+ AdaRound + bias correction": {"adaround": True, "bias_correction": True},
    "+ equalization + AdaRound + bias correction": {
        "equalize": True,
        "adaround": True,
        "bias_correction": True,
    },
}


def find(name: str) -> Path:
    for base in (SHARED / "real-models", REPO / "tests" / "data" / "third_party"):
        if (base / name).exists():
            return base / name
    raise SystemExit(f"{name} not found in ../shared/real-models or tests/data/third_party")


def split(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The example's photo crops (``examples/real_mobilenet/prepare.py``: one definition of the data)."""
    sys.path.insert(0, str(REPO / "examples" / "real_mobilenet"))
    from prepare import split as photo_split

    cal, val = photo_split(size)
    return cal.astype(np.float32), val.astype(np.float32)


def outputs(model: bytes, x: np.ndarray, raw_uint8: bool = False) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    i = interp.get_input_details()[0]
    outs: list[list[np.ndarray]] = [[] for _ in interp.get_output_details()]
    for s in x:
        x = s[None]
        if raw_uint8:
            x = x.astype(np.uint8)
        elif i["dtype"] != np.float32:  # integer model input: quantize as LiteRT's QUANTIZE would
            scale, zp = i["quantization"]
            info = np.iinfo(i["dtype"])
            x = np.clip(np.round(x / scale + zp), info.min, info.max).astype(i["dtype"])
        else:
            x = x.astype(np.float32)
        interp.set_tensor(i["index"], x)
        interp.invoke()
        for k, o in enumerate(interp.get_output_details()):
            y = interp.get_tensor(o["index"])[0].astype(np.float32)
            if o["dtype"] != np.float32:
                scale, zp = o["quantization"]
                y = (y - zp) * scale
            outs[k].append(y)
    return [np.stack(o) for o in outs]


def sqnr(ref: np.ndarray, y: np.ndarray) -> float:
    err = float(((ref - y) ** 2).sum())
    return float(10 * np.log10(float((ref**2).sum()) / max(err, 1e-30)))


def figures(ref: list[np.ndarray], got: list[np.ndarray], classifier: bool) -> dict[str, float]:
    out = {"sqnr_db": round(min(sqnr(r, g) for r, g in zip(ref, got, strict=True)), 2)}
    if classifier:
        out["agreement_top1"] = round(float((ref[0].argmax(-1) == got[0].argmax(-1)).mean()), 4)
    return out


def normalize(pixels: np.ndarray, rule: tuple[float, float]) -> np.ndarray:
    return (pixels - rule[0]) / rule[1]


def aeq_int8(path: Path, cal: np.ndarray) -> bytes | None:
    """ai-edge-quantizer's static int8 on the same (normalized) calibration inputs."""
    try:
        from liteship.convert.tflite_quant import ensure_signature, quantize_keeping_float, signature_inputs
        from liteship.model.flatbuffer import builtin_code, load_model, pack_model
    except ImportError:
        return None
    loaded = load_model(path)
    for code in loaded.model.operatorCodes:  # legacy op codes (what liteship's loader normalizes)
        b = builtin_code(code)
        code.builtinCode, code.deprecatedBuiltinCode = b, min(b, 127)
    data = ensure_signature(pack_model(loaded.model, loaded.data))
    name = next(iter(signature_inputs(data)[1]))
    try:
        return quantize_keeping_float(data, "int8", calibration=[{name: s[None]} for s in cal])
    except Exception as e:  # the reference tool's own failure is a result too
        print(f"ai-edge-quantizer failed: {e}", file=sys.stderr)
        return None


def bench_model(key: str, methods: list[str]) -> dict:
    from liteship.convert import convert

    fname, size, rule = MODELS[key]
    path = find(fname)
    rule = (127.5, 127.5) if rule == "metadata" else rule  # MobileNet's own metadata says so
    cal_px, val_px = split(size)
    val = normalize(val_px, rule)
    float_bytes = path.read_bytes()
    ref = outputs(float_bytes, val)
    classifier = key == "mobilenet"
    rows = []
    if key == "mobilenet":
        twin = outputs(find(TWIN).read_bytes(), val_px, raw_uint8=True)
        rows.append({"method": "QAT twin (Google, uint8)", **figures(ref, twin, True), "seconds": None})
    t0 = time.perf_counter()
    aeq = aeq_int8(path, normalize(cal_px, rule))
    if aeq is not None:
        rows.append(
            {
                "method": "ai-edge-quantizer static int8",
                **figures(ref, outputs(aeq, val), classifier),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    with tempfile.TemporaryDirectory() as tmp:
        calib = Path(tmp) / "cal.npy"
        np.save(calib, cal_px if key == "mobilenet" else normalize(cal_px, rule))  # MobileNet: raw pixels
        for m in methods:
            t0 = time.perf_counter()
            rep = convert(
                str(path),
                quantize="int8",
                calibration=str(calib),
                calibration_samples=len(cal_px),
                progress=False,
                **METHODS[m],
            )
            row = {
                "method": f"liteship {m}",
                **figures(ref, outputs(rep.model_bytes, val), classifier),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            print(f"  {key:10s} {row}", file=sys.stderr, flush=True)
    return {"model": fname, "calibration_crops": len(cal_px), "validation_crops": len(val_px), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mobilenet,blazeface,hand,pose")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated keys of METHODS")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import subprocess

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu_name = next(
        (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?"
    )
    result = {"cpu": cpu_name, "python": platform.python_version(), "models": []}
    for key in args.models.split(","):
        result["models"].append(bench_model(key, [m for m in args.methods.split(",") if m in METHODS]))
    for m in result["models"]:
        print(
            f"\n{m['model']} ({m['calibration_crops']} calibration crops, {m['validation_crops']} validation crops)"
        )
        print("| method | top-1 agreement | SQNR dB | time s |\n|---|---:|---:|---:|")
        for r in m["rows"]:
            agree = f"{100 * r['agreement_top1']:.1f} %" if "agreement_top1" in r else "–"
            print(
                f"| {r['method']} | {agree} | {r['sqnr_db']:.2f} | {r['seconds'] if r['seconds'] is not None else '–'} |"
            )
    print(f"\nCPU: {cpu_name}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
