"""Models whose weights lie after the flatbuffer (``Buffer.offset``/``size``) keep them when liteship
rewrites their metadata. The model is a small CNN converted by TensorFlow's own converter with
``_experimental_use_buffer_offset``, which writes every weight that way (as it does for large models)."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import ModelError
from liteship.model.flatbuffer import (
    load_model,
    pack_model,
    read_liteship_info,
    set_metadata_entry,
    write_liteship_info,
)
from liteship.model.metadata import read_metadata, write_metadata
from liteship.runtime import LiteRTRunner


@pytest.fixture(scope="module")
def offset_model() -> bytes:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)  # untrained weights do: only the bytes and the outputs matter here
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv._experimental_use_buffer_offset = True
    data = conv.convert()
    external = [b for b in load_model(data).model.buffers if b.offset > 1]
    assert len(external) >= 4  # the converter did put the weights after the flatbuffer
    return data


def _outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    with LiteRTRunner(model, num_threads=1) as r:
        return next(iter(r.infer({r.input_specs[0].name: x}).values()))


def test_metadata_can_be_set_and_the_model_runs_identically(offset_model, digits):
    x = digits[2][:8]
    want = _outputs(offset_model, x)
    out = set_metadata_entry(offset_model, "extra", b"hello")
    out = write_liteship_info(out, {"recipe": "float32"})
    loaded = load_model(out)
    assert loaded.metadata["extra"] == b"hello" and read_liteship_info(loaded) == {"recipe": "float32"}
    before, after = load_model(offset_model).model.buffers, loaded.model.buffers
    moved = [(a, b) for a, b in zip(before, after, strict=False) if a.offset > 1]
    assert moved and all(b.offset > 1 and b.offset % 16 == 0 and b.size == a.size for a, b in moved)
    for a, b in moved:  # the same weights, now after the new flatbuffer
        assert out[b.offset : b.offset + b.size] == offset_model[a.offset : a.offset + a.size]
    np.testing.assert_array_equal(_outputs(out, x), want)


def test_tflite_metadata_and_labels_zip_are_written_on_such_a_model(offset_model, digits):
    x = digits[2][:4]
    out = write_metadata(
        offset_model, name="digits", labels=[str(i) for i in range(10)], input_mean=0.0, input_std=1.0
    )
    assert read_metadata(out)["name"] == "digits"
    np.testing.assert_array_equal(_outputs(out, x), _outputs(offset_model, x))


def test_packing_without_the_bytes_refuses_instead_of_dropping_weights(offset_model):
    with pytest.raises(ModelError, match="after the flatbuffer"):
        pack_model(load_model(offset_model).model)


def test_the_other_rewriters_keep_them_too(offset_model, digits):
    # the batch-1 copy for accelerators and the bisection's sub-models rewrite the model the same way
    from liteship.model.flatbuffer import batch_one_copy
    from liteship.runtime.blame import op_range_model

    x = digits[2][:1]
    want = _outputs(offset_model, x)
    fixed = batch_one_copy(offset_model)
    assert fixed is not None
    np.testing.assert_array_equal(_outputs(fixed, x), want)
    loaded = load_model(offset_model)
    whole = op_range_model(loaded, 0, len(loaded.model.subgraphs[0].operators))
    np.testing.assert_array_equal(_outputs(whole, x), want)
