"""Train a small CNN on scikit-learn's bundled 8x8 handwritten digits (nothing is downloaded).

Writes into ``work/``: ``digits.keras`` (the trained model), ``calib.npy`` (200 raw training images for
calibration), ``val.npz`` (held-out raw images ``x`` with labels ``y``) and ``labels.txt``.
The images stay raw (pixel values 0..16); ``liteship.yaml`` declares the normalization once
(``mean 0, std 16``) and every stage — calibration, validation, metadata, the device — reuses it.

    python examples/digits/prepare.py [WORKDIR]     # default: examples/digits/work
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def prepare(work: Path = HERE / "work", epochs: int = 20, seed: int = 0) -> Path:
    from sklearn.datasets import load_digits

    from liteship._tf import import_tf

    import_tf()  # quiet TensorFlow's start-up noise before Keras imports it
    import keras

    work.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = digits.images.astype(np.float32)[..., None]  # raw 0..16
    y = digits.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    x, y = x[idx], y[idx]
    x_train, y_train, x_val, y_val = x[:1297], y[:1297], x[1297:], y[1297:]

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="digits_cnn",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    t = time.perf_counter()
    model.fit(x_train / 16.0, y_train, epochs=epochs, batch_size=32, verbose=0)
    _, acc = model.evaluate(x_val / 16.0, y_val, verbose=0)
    print(
        f"trained digits CNN in {time.perf_counter() - t:.1f} s: validation accuracy {acc:.4f} "
        f"on {len(x_val)} held-out images"
    )
    model.save(work / "digits.keras")
    np.save(work / "calib.npy", x_train[:200])
    np.savez(work / "val.npz", x=x_val, y=y_val)
    (work / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
    return work


if __name__ == "__main__":
    prepare(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "work")
