"""predict (``liteship run``): arrays get the model's preprocessing like images; NaN/Inf are refused."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import DataError, ModelError, UsageError
from liteship.model.flatbuffer import write_liteship_info
from liteship.runtime import LiteRTRunner
from liteship.runtime.predict import predict


@pytest.fixture(scope="module")
def recorded(tflite_int8, tmp_path_factory):
    """The int8 digits model with liteship's record: raw pixels 0..16, normalized by (x - 0) / 16."""
    p = tmp_path_factory.mktemp("pred") / "with_record.tflite"
    p.write_bytes(
        write_liteship_info(tflite_int8.read_bytes(), {"preprocessing": {"mean": [0], "std": [16]}})
    )
    return p


@pytest.fixture(scope="module")
def expected(tflite_int8, digits):
    x = digits[2][:5]  # normalized 0..1
    with LiteRTRunner(tflite_int8) as r:
        (y,) = r.infer(x).values()
    return x, y


def test_array_gets_the_model_record_as_images_do(recorded, expected, tmp_path):
    x, y = expected
    np.save(tmp_path / "raw.npy", x * 16)  # raw pixels, as validate/bench/calibration are given them
    report = predict(recorded, tmp_path / "raw.npy")
    np.testing.assert_array_equal(next(iter(report.outputs.values())), y)
    assert report.preprocessing_source == "liteship" and report.preprocessing["std"] == [16.0]
    assert report.describe_preprocessing() == "mean 0 std 16 from the model's liteship record"
    assert report.to_dict()["preprocessing_text"] == "mean 0 std 16 from the model's liteship record"


def test_no_preprocess_and_overrides(recorded, tflite_int8, expected, tmp_path):
    x, y = expected
    np.save(tmp_path / "norm.npy", x)
    np.save(tmp_path / "raw.npy", x * 16)
    off = predict(recorded, tmp_path / "norm.npy", preprocess=False)
    np.testing.assert_array_equal(next(iter(off.outputs.values())), y)
    assert off.preprocessing is None and off.describe_preprocessing() == "none (turned off)"
    # a model without a record: --std given by hand
    over = predict(tflite_int8, tmp_path / "raw.npy", std=16)
    np.testing.assert_array_equal(next(iter(over.outputs.values())), y)
    assert over.describe_preprocessing() == "mean 0 std 16 given explicitly"
    assert predict(tflite_int8, tmp_path / "norm.npy").describe_preprocessing().startswith("no normalization")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"std": 0}, r"std \[0.0\] must be > 0"),
        ({"std": -2}, r"std \[-2.0\] must be > 0"),
        ({"mean": 1, "preprocess": False}, "mean given with preprocess=False"),
        ({"std": 16, "raw": True}, "std given with raw=True"),
    ],
)
def test_bad_overrides_are_usage_errors(recorded, tmp_path, kwargs, match):
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
    with pytest.raises(UsageError, match=match):
        predict(recorded, tmp_path / "x.npy", **kwargs)


def test_per_channel_values_must_fit_the_array(recorded, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
    with pytest.raises(DataError, match="mean has 3 values but the array .* has 1 channels"):
        predict(recorded, tmp_path / "x.npy", mean=[1, 2, 3])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused(recorded, tmp_path, value):
    x = np.zeros((8, 8, 1), np.float32)
    x[3, 4, 0] = value
    np.save(tmp_path / "bad.npy", x)
    for kw in ({}, {"preprocess": False}):
        with pytest.raises(DataError, match=r"contains NaN or Inf in 1 of 64 values"):
            predict(recorded, tmp_path / "bad.npy", **kw)


def test_input_directory_and_model_name_in_errors(recorded, third_party_models, tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        predict(recorded, tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
    flex = third_party_models / "whitespace_tokenizer_flex_delegate.tflite"
    with pytest.raises(ModelError) as e:
        predict(flex, tmp_path / "x.npy")
    text = str(e.value)
    assert "cannot load whitespace_tokenizer_flex_delegate.tflite" in text and "model.tflite" not in text
    assert "ops_selectNode" not in text and "ops_select. Node number 0" in text
