"""Reference runners: the Keras model and the SavedModel behind the Runner interface."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import InferenceError, ModelError
from liteship.runtime import KerasRunner, LiteRTRunner, SavedModelRunner, open_reference


def test_keras_runner_names_io_like_the_model_and_matches_it(keras_model, digits):
    x = digits[2][:16]
    with KerasRunner(keras_model) as r:
        assert [s.name for s in r.input_specs] == ["image"]
        assert r.input_specs[0].shape == (-1, 8, 8, 1) and r.input_specs[0].dtype == "float32"
        assert [(s.name, s.shape) for s in r.output_specs] == [("probs", (-1, 10))]
        out = r.infer({"image": x})
    assert list(out) == ["probs"]
    np.testing.assert_array_equal(out["probs"], np.asarray(keras_model(x, training=False)))
    assert r.backend.startswith("keras ")


def test_keras_runner_from_file_equals_in_memory(keras_model, keras_path, digits):
    x = digits[2][:8]
    from_file = KerasRunner(keras_path).infer(x)["probs"]
    np.testing.assert_allclose(from_file, KerasRunner(keras_model).infer(x)["probs"], atol=1e-6)


def test_keras_runner_adds_batch_and_casts_float64(keras_model, digits):
    one = digits[2][0].astype(np.float64)  # no batch dimension, float64
    out = KerasRunner(keras_model).infer(one)["probs"]
    assert out.shape == (1, 10) and out.dtype == np.float32


def test_saved_model_runner_uses_signature_keys(saved_model_dir, keras_model, digits):
    x = digits[2][:8]
    with SavedModelRunner(saved_model_dir) as r:
        assert [s.name for s in r.input_specs] == ["image"]
        assert [s.name for s in r.output_specs] == ["output_0"]
        out = r.infer(x)
    np.testing.assert_allclose(out["output_0"], np.asarray(keras_model(x)), atol=1e-5)


def test_saved_model_runner_unknown_signature_lists_the_real_ones(saved_model_dir):
    with pytest.raises(ModelError, match="serving_default"):
        SavedModelRunner(saved_model_dir, signature="nope")


def test_wrong_shape_is_an_error_listing_expected_inputs(keras_model):
    with pytest.raises(InferenceError, match=r"image: float32\[-1, 8, 8, 1\]"):
        KerasRunner(keras_model).infer(np.zeros((1, 9, 9, 1), np.float32))


def test_open_reference_picks_the_runner(keras_model, keras_path, saved_model_dir, tflite_float):
    assert isinstance(open_reference(keras_path), KerasRunner)
    assert isinstance(open_reference(keras_model), KerasRunner)
    assert isinstance(open_reference(saved_model_dir), SavedModelRunner)
    lite = open_reference(tflite_float)
    assert isinstance(lite, LiteRTRunner)
    assert open_reference(lite) is lite


def test_open_reference_errors_say_what_is_accepted(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        open_reference(tmp_path / "missing.keras")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"unknown model type '\.onnx'.*\.keras"):
        open_reference(tmp_path / "model.onnx")
    with pytest.raises(ModelError, match="not a SavedModel"):
        open_reference(tmp_path)


def test_module_imports_and_runs_tflite_without_tensorflow(no_tf_python, tflite_float):
    p = no_tf_python(f"""
        import numpy as np
        from liteship.runtime import open_reference, KerasRunner, SavedModelRunner
        r = open_reference({str(tflite_float)!r})
        print(type(r).__name__, r.infer(np.zeros((1, 8, 8, 1), np.float32))[r.output_specs[0].name].shape)
        try:
            KerasRunner("x.keras")
        except Exception as e:
            print(type(e).__name__)
    """)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["LiteRTRunner", "(1,", "10)", "UsageError"]
