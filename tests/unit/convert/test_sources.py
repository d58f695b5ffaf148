"""Every kind of source converts; the Keras 3 fallback; bad sources fail with one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.convert import convert
from liteship.errors import ConversionError, UsageError
from liteship.runtime import LiteRTRunner


def _probs(path_or_bytes, x):
    with LiteRTRunner(path_or_bytes) as runner:
        (y,) = runner.infer({runner.input_specs[0].name: x}).values()
    return y


def test_keras_file_and_in_memory_model_match_keras(keras_model, keras_path, digits, tmp_path):
    x = digits[2][:8]
    want = keras_model.predict(x, verbose=0)
    from_file = convert(keras_path, tmp_path / "a.tflite", progress=False)
    in_memory = convert(keras_model, tmp_path / "b.tflite", progress=False)
    assert (from_file.source_kind, from_file.method) == ("keras_file", "from_keras_model")
    assert (in_memory.source_kind, in_memory.source) == ("keras_model", "digits_cnn")
    np.testing.assert_allclose(_probs(from_file.output, x), want, atol=1e-5)
    np.testing.assert_allclose(_probs(in_memory.output, x), want, atol=1e-5)


def test_h5_file(keras_model, digits, tmp_path):
    path = tmp_path / "digits.h5"
    keras_model.save(path)
    report = convert(path, None, quantize="dynamic")
    assert report.source_kind == "keras_file" and report.inputs[0].dtype == "float32"
    assert (
        _probs(report.model_bytes, digits[2][:1]).argmax()
        == keras_model.predict(digits[2][:1], verbose=0).argmax()
    )


def test_tf_function_and_concrete_function(tmp_path):
    import tensorflow as tf

    w = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def f(x):
        return tf.nn.relu(tf.matmul(x, w))

    for source in (f, f.get_concrete_function()):
        report = convert(source, None)
        assert (report.source_kind, report.method) == ("tf_function", "from_concrete_functions")
        np.testing.assert_allclose(_probs(report.model_bytes, np.ones((1, 4), np.float32)), [[18, 22, 26]])

    @tf.function
    def no_signature(x):
        return x

    with pytest.raises(UsageError, match="input signature"):
        convert(no_signature)


def test_keras3_fallback_to_export_when_from_keras_model_breaks(keras_model, digits, monkeypatch):
    """tensorflow#63987: from_keras_model raises on some Keras 3 models; liteship exports instead."""
    import tensorflow as tf

    def broken(model):
        raise AttributeError("'Sequential' object has no attribute '_get_save_spec'")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_keras_model", broken)
    report = convert(keras_model, None, quantize="int8", calibration=digits[0][:20])
    assert report.method == "export→from_saved_model"
    assert any("_get_save_spec" in w and "model.export()" in w for w in report.warnings)
    assert report.inputs[0].dtype == "int8"
    x = digits[2][:20]
    assert (
        _probs(report.model_bytes, x).argmax(1) == keras_model.predict(x, verbose=0).argmax(1)
    ).mean() > 0.8


def test_missing_path(tmp_path):
    with pytest.raises(ConversionError, match="does not exist"):
        convert(tmp_path / "nope.keras")


def test_directory_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "variables").mkdir()
    with pytest.raises(ConversionError, match=r"not a SavedModel \(it has no saved_model.pb\)"):
        convert(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("model.keras", b"not a zip", "not a .keras archive"),
        ("model.h5", b"not hdf5", "not an HDF5 file"),
        ("model.onnx", b"\x08\x01", "unknown model file type '.onnx'"),
    ],
)
def test_bad_files(name, content, match, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConversionError, match=match):
        convert(path)


def test_not_a_model_object():
    with pytest.raises(UsageError, match="cannot convert a dict"):
        convert({"weights": 1})


def test_identity_preprocessing_is_said_not_silent(keras_path, tmp_path, cli):
    """Issue 22 (13): without mean/std the model records identity preprocessing; the conversion says so
    (validate then compared two models both fed 0..255 and passed at 25 % accuracy)."""
    from liteship.convert.converter import IDENTITY_WARNING

    plain = convert(keras_path, tmp_path / "a.tflite", progress=False)
    assert IDENTITY_WARNING in plain.warnings
    assert f"warning: {IDENTITY_WARNING}" in plain.summary_lines()
    normalized = convert(
        keras_path, tmp_path / "b.tflite", progress=False, preprocessing={"mean": [0], "std": [255]}
    )
    assert IDENTITY_WARNING not in normalized.warnings
    r = cli("convert", str(keras_path), "-o", str(tmp_path / "c.tflite"))
    assert r.returncode == 0 and "no normalization was given (mean/std)" in " ".join(
        r.stdout.split() + r.stderr.split()
    )
