"""An ImageNet-sized architecture for latency work: MobileNetV2 at 224x224, nothing downloaded.

``keras.applications.MobileNetV2(weights=None)`` has the real architecture (depthwise/pointwise
convolutions, 2.3 M parameters with a 10-class head) with freshly initialized weights — no download.
Training it on a CPU would take hours, so the example makes it a working classifier cheaply: the
BatchNorm statistics are set from 64 images (one forward pass in training mode, momentum 0), and the
10-class head is fitted (logistic regression) on the random convolutional features of 400 training
images. The result classifies upscaled digits far above chance, so agreement and accuracy between
recipes mean something; the point of the example is the latency and size differences on a CPU.

Writes into ``work/``: ``mobilenet_v2.keras`` and image folders made from scikit-learn's bundled
digits (upscaled to 64x64, in colour, one sub-folder per class): ``train/`` (400, used here only),
``calib/`` (200) and ``val/`` (500). liteship's image loader resizes them to 224x224 and applies the
declared normalization (mean 127.5, std 127.5).

    python examples/mobilenet/prepare.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def _write_images(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from PIL import Image

    palette = np.array([[255, 80, 40], [40, 200, 90], [60, 90, 255]], dtype=np.float32)
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        d = folder / f"class_{int(y)}"
        d.mkdir(parents=True, exist_ok=True)
        gray = np.kron(img / 16.0, np.ones((8, 8)))  # 8x8 → 64x64
        rgb = (gray[..., None] * palette[i % 3] + (1 - gray[..., None]) * 30).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(d / f"{i:04d}.png")


def prepare(work: Path = HERE / "work", seed: int = 0) -> Path:
    from sklearn.datasets import load_digits

    from liteship._tf import import_tf

    import_tf()
    import keras
    from sklearn.linear_model import LogisticRegression

    from liteship.data import load_dataset
    from liteship.types import Preprocessing

    work.mkdir(parents=True, exist_ok=True)
    d = load_digits()
    idx = np.random.default_rng(seed).permutation(len(d.images))
    images, labels = d.images[idx], d.target[idx]
    _write_images(work / "calib", images[:200], labels[:200])
    _write_images(work / "val", images[200:700], labels[200:700])
    _write_images(work / "train", images[700:1100], labels[700:1100])

    t = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=10)
    pre = Preprocessing(mean=127.5, std=127.5)
    train = load_dataset(work / "train", preprocessing=pre, input_shape=(1, 224, 224, 3))
    x = np.stack([s for s, _ in train])
    y = np.array([label for _, label in train])
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.momentum = 0.0  # the moving statistics become this batch's statistics
    model(x[:64], training=True)
    for layer in bns:
        layer.momentum = 0.99
    features = keras.Model(model.input, model.layers[-2].output).predict(x, batch_size=32, verbose=0)
    head = LogisticRegression(max_iter=2000, C=1.0).fit(features, y)
    model.layers[-1].set_weights([head.coef_.T.astype(np.float32), head.intercept_.astype(np.float32)])
    model.save(work / "mobilenet_v2.keras")
    print(
        f"built MobileNetV2 (weights=None, {model.count_params():,} parameters; BatchNorm statistics and "
        f"head fitted on {len(x)} images, train accuracy {head.score(features, y):.3f}) "
        f"in {time.perf_counter() - t:.1f} s"
    )
    return work


if __name__ == "__main__":
    prepare()
