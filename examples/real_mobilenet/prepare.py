"""Real photos for Google's float MobileNetV1 0.25 (a TOCO-era .tflite with TFLite metadata): calibration
and validation crops, and the agreement its quantization-aware-trained uint8 twin reaches on them.

Photos: the hand photos of ``../shared/real-photos/`` (else the few in ``tests/data/third_party/photos``)
and scikit-image's bundled colour photos when scikit-image is installed. Each photo gives 6 real crops
(centre + 5 random, half mirrored) resized to 224×224 and kept as raw pixels 0–255: the model's own
metadata says how to normalize them. Photos are split by index, so no validation crop comes from a
calibration photo.

    python examples/real_mobilenet/prepare.py work
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "data" / "third_party"
FLOAT_MODEL = MODELS / "mobilenet_v1_0.25_224_1_metadata_1.tflite"
QAT_TWIN = MODELS / "mobilenet_v1_0.25_224_quant.tflite"
SKIMAGE_PHOTOS = (
    "astronaut",
    "cat",
    "chelsea",
    "coffee",
    "colorwheel",
    "hubble_deep_field",
    "retina",
    "rocket",
)


def photos() -> list[np.ndarray]:
    from PIL import Image

    folder = REPO.parent / "shared" / "real-photos"
    if not folder.exists():
        folder = MODELS / "photos"
    out = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.rglob("*.jpg"))]
    try:
        import skimage.data as sd

        out += [getattr(sd, n)()[..., :3] for n in SKIMAGE_PHOTOS]
    except ImportError:
        print("scikit-image is not installed: hand photos only", file=sys.stderr)
    return out


def crops(img: np.ndarray, size: int, n: int = 6, seed: int = 0) -> list[np.ndarray]:
    """``n`` square crops of ``img`` (the centre one, then random ones of 50–90 % of the short side),
    every second one mirrored, resized to ``size``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    side = min(h, w)
    out = []
    for k in range(n):
        c = side if k == 0 else int(side * rng.uniform(0.5, 0.9))
        y = (h - c) // 2 if k == 0 else int(rng.integers(0, h - c + 1))
        x = (w - c) // 2 if k == 0 else int(rng.integers(0, w - c + 1))
        a = np.asarray(Image.fromarray(img[y : y + c, x : x + c]).resize((size, size), Image.BILINEAR))
        out.append(a[:, ::-1] if k % 2 else a)
    return out


def split(size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """``(calibration, validation)`` crops as uint8 pixels: even photos calibrate, odd ones validate."""
    cal: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for i, img in enumerate(photos()):
        (cal if i % 2 == 0 else val).extend(crops(img, size, seed=i))
    return np.stack(cal).astype(np.uint8), np.stack(val).astype(np.uint8)


def twin_agreement(val: np.ndarray) -> float:
    """Top-1 agreement of the QAT uint8 twin (raw pixels in) with the float model (x/127.5 − 1 in)."""
    from ai_edge_litert.interpreter import Interpreter

    def top1(path: Path, x: np.ndarray) -> np.ndarray:
        interp = Interpreter(model_path=str(path))
        interp.allocate_tensors()
        i, o = interp.get_input_details()[0], interp.get_output_details()[0]
        out = []
        for s in x:
            interp.set_tensor(i["index"], s[None].astype(i["dtype"]))
            interp.invoke()
            out.append(int(interp.get_tensor(o["index"])[0].argmax()))
        return np.array(out)

    ref = top1(FLOAT_MODEL, (val.astype(np.float32) - 127.5) / 127.5)
    return float((top1(QAT_TWIN, val) == ref).mean())


def prepare(work: Path) -> dict[str, float | int]:
    work.mkdir(parents=True, exist_ok=True)
    cal, val = split()
    np.save(work / "calib.npy", cal)
    np.save(work / "val.npy", val)
    facts = {"calibration": len(cal), "validation": len(val), "twin_agreement": twin_agreement(val)}
    (work / "twin.json").write_text(json.dumps(facts, indent=2))
    return facts


if __name__ == "__main__":
    print(json.dumps(prepare(Path(sys.argv[1] if len(sys.argv) > 1 else "work")), indent=2))
