"""Issue 13 figures: PyTorch and float .tflite sources.

1. A MobileNetV2-sized PyTorch CNN (the MobileNetV2 architecture built here, 224x224x3, 10 classes;
   untrained, BatchNorm statistics estimated on the images): litert-torch conversion time for float32
   and PT2E int8, and int8's agreement with the PyTorch original (through liteship.validate against
   TorchRunner).
2. ai-edge-quantizer static int8 (from the float .tflite) vs the TFLite converter's int8 (from the Keras
   model) on the same trained digits CNN: accuracy, agreement with float32, latency, size — one run.

    python benchmarks/sources.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def mobilenet_v2(num_classes: int = 10):
    import torch
    from torch import nn

    def conv_bn(i: int, o: int, k: int, s: int, groups: int = 1, act: bool = True) -> nn.Sequential:
        layers = [nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o)]
        return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)

    class Inverted(nn.Module):
        def __init__(self, i: int, o: int, s: int, t: int) -> None:
            super().__init__()
            h = i * t
            layers = ([conv_bn(i, h, 1, 1)] if t != 1 else []) + [
                conv_bn(h, h, 3, s, groups=h),
                conv_bn(h, o, 1, 1, act=False),
            ]
            self.block = nn.Sequential(*layers)
            self.residual = s == 1 and i == o

        def forward(self, x):
            return x + self.block(x) if self.residual else self.block(x)

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cfg = [
                (1, 16, 1, 1),
                (6, 24, 2, 2),
                (6, 32, 3, 2),
                (6, 64, 4, 2),
                (6, 96, 3, 1),
                (6, 160, 3, 2),
                (6, 320, 1, 1),
            ]
            layers: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
            c = 32
            for t, o, n, s in cfg:
                for k in range(n):
                    layers.append(Inverted(c, o, s if k == 0 else 1, t))
                    c = o
            layers.append(conv_bn(c, 1280, 1, 1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(1280, num_classes)

        def forward(self, x):
            return torch.softmax(self.classifier(self.features(x).mean((2, 3))), dim=1)

    return MobileNetV2()


def digits_images(size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits upscaled to size x size x 3 in 0..1 (NHWC)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = [
        np.asarray(
            Image.fromarray((im * 16).astype(np.uint8)).resize((size, size)).convert("RGB"), np.float32
        )
        / 255.0
        for im in d.images[:300]
    ]
    return np.stack(imgs), d.target[:300]


def torch_figures(tmp: Path) -> dict:
    import torch

    from liteship.convert import TorchModel, convert
    from liteship.validate import validate

    torch.manual_seed(0)
    net = mobilenet_v2()
    x, _ = digits_images()
    nchw = torch.from_numpy(np.moveaxis(x, -1, 1).copy())
    net.train()
    with torch.no_grad():  # BatchNorm statistics from the images, so activations are in range
        for i in range(0, 200, 20):
            net(nchw[i : i + 20])
    net.eval()
    params = sum(p.numel() for p in net.parameters())
    np.save(tmp / "calib.npy", x[:100])
    with torch.no_grad():
        labels = net(nchw[200:300]).argmax(1).numpy()  # the original's own answers
    np.savez(tmp / "val.npz", x=x[200:300], y=labels)
    src = TorchModel(net, (torch.zeros(1, 3, 224, 224),), "mobilenet_v2_torch")
    out: dict = {"params": params}
    for recipe in ("none", "int8"):
        t = time.perf_counter()
        rep = convert(
            src,
            tmp / f"mnv2.{recipe}.tflite",
            quantize=recipe,
            calibration=tmp / "calib.npy" if recipe == "int8" else None,
            calibration_samples=100,
            progress=False,
        )
        seconds = time.perf_counter() - t
        v = validate(
            tmp / f"mnv2.{recipe}.tflite", src, tmp / "val.npz", raise_on_failure=False, progress=False
        )
        out[recipe] = {
            "convert_s": round(seconds, 1),
            "size_kib": round(rep.size_bytes / 1024, 1),
            "top1_agreement": v.agreement[0].top1,
            "accuracy_vs_original_answers": v.agreement[0].candidate_accuracy,
            "sqnr_db": v.outputs[0].sqnr_db if getattr(v, "outputs", None) else None,
        }
    return out


def quantizer_figures(tmp: Path) -> dict:
    import keras
    import tensorflow as tf
    from sklearn.datasets import load_digits

    from liteship.bench import benchmark
    from liteship.convert import convert
    from liteship.validate import validate

    d = load_digits()
    xx = (d.images.astype(np.float32) / 16.0)[..., None]
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(xx))
    xx, yy = xx[idx], d.target[idx]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(xx[:1300], yy[:1300], epochs=8, batch_size=64, verbose=0)
    model.save(tmp / "digits.keras")
    np.save(tmp / "dcalib.npy", xx[:200])
    np.savez(tmp / "dval.npz", x=xx[1300:], y=yy[1300:])
    float_path = tmp / "digits_float.tflite"
    convert(tmp / "digits.keras", float_path, progress=False)
    rows = {}
    for name, src in (
        ("tflite-converter int8 (from .keras)", tmp / "digits.keras"),
        ("ai-edge-quantizer int8 (from float .tflite)", float_path),
    ):
        path = tmp / f"{len(rows)}.tflite"
        t = time.perf_counter()
        rep = convert(
            src,
            path,
            quantize="int8",
            io_type="float32",
            calibration=tmp / "dcalib.npy",
            calibration_samples=200,
            progress=False,
        )
        seconds = time.perf_counter() - t
        v = validate(path, float_path, tmp / "dval.npz", raise_on_failure=False, progress=False)
        b = benchmark([path], threads=[1], runs=300, warmup=20, min_seconds=1.0, progress=False).entries[0]
        rows[name] = {
            "convert_s": round(seconds, 2),
            "size_kib": round(rep.size_bytes / 1024, 1),
            "accuracy": v.agreement[0].candidate_accuracy,
            "float_accuracy": v.agreement[0].reference_accuracy,
            "top1_agreement_vs_float": v.agreement[0].top1,
            "p50_us_1thread": round(b.latency.p50_ms * 1000, 1),
        }
    bf = benchmark([float_path], threads=[1], runs=300, warmup=20, min_seconds=1.0, progress=False).entries[0]
    rows["float32 (reference)"] = {
        "size_kib": round(float_path.stat().st_size / 1024, 1),
        "p50_us_1thread": round(bf.latency.p50_ms * 1000, 1),
    }
    del tf
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", choices=("torch", "quantizer"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = {}
        if args.only in (None, "quantizer"):
            result["quantizer_vs_tflite_converter"] = quantizer_figures(tmp)
            print(json.dumps(result["quantizer_vs_tflite_converter"], indent=2), flush=True)
        if args.only in (None, "torch"):
            result["torch_mobilenet_v2"] = torch_figures(tmp)
            print(json.dumps(result["torch_mobilenet_v2"], indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
