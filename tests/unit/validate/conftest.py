"""A deliberately damaged candidate: the digits CNN with its last Dense layer's classes rotated by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def damaged_tflite(keras_model, out: Path) -> Path:
    """Copy the model, rotate the classes of the final Dense (class k scores as k+1), convert with TF."""
    import keras
    import tensorflow as tf

    copy = keras.models.clone_model(keras_model)
    copy.set_weights(keras_model.get_weights())
    kernel, bias = copy.get_layer("probs").get_weights()
    copy.get_layer("probs").set_weights([np.roll(kernel, 1, axis=1), np.roll(bias, 1)])
    export = out.parent / (out.stem + "_savedmodel")
    copy.export(str(export), verbose=False)
    out.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(export)).convert())
    return out


@pytest.fixture(scope="session")
def tflite_damaged(keras_model, model_dir) -> Path:
    return damaged_tflite(keras_model, model_dir / "digits_damaged.tflite")
