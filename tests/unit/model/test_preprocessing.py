"""The one preprocessing rule (issue 20): override → liteship's record → TFLite metadata → none, said in
words, and data that do not fit it caught where they are first seen. Real models from the wild."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import DataError
from liteship.model.flatbuffer import write_liteship_info
from liteship.model.preprocessing import (
    PIXELS,
    PreprocessingRule,
    check_data_fits,
    check_dataset_fits,
    declared_rule,
    resolve_preprocessing,
)
from liteship.types import Preprocessing

MOBILENET = "mobilenet_v1_0.25_224_1_metadata_1.tflite"
BLAZEFACE = "blazeface_face_detection_front_128_float.tflite"


def test_the_model_metadata_is_the_rule(third_party_models):
    rule = resolve_preprocessing(third_party_models / MOBILENET)
    assert rule.source == "metadata" and rule.preprocessing.mean == (127.5,) and rule.expects_pixels
    assert rule.describe(PIXELS) == (
        "mean 127.5 std 127.5 from the model's TFLite metadata; data read as raw pixels 0–255"
    )
    assert rule.to_dict()["text"].startswith("mean 127.5 std 127.5")


def test_liteship_record_wins_over_metadata_and_an_override_over_both(third_party_models):
    recorded = write_liteship_info(
        (third_party_models / MOBILENET).read_bytes(), {"preprocessing": {"mean": [0], "std": [255]}}
    )
    assert declared_rule(recorded).source == "liteship" and declared_rule(recorded).preprocessing.std == (
        255.0,
    )
    over = resolve_preprocessing(recorded, {"mean": 0.0, "std": 1.0})
    assert over.source == "override" and not over.normalizes
    assert over.describe() == "no normalization (given explicitly)"
    sized = resolve_preprocessing(third_party_models / MOBILENET, {"size": (200, 200)})
    assert sized.source == "metadata" and sized.preprocessing.mean == (127.5,)  # the rest stays declared
    assert "resized to 200×200" in sized.describe()


def test_a_model_that_declares_nothing(third_party_models, tmp_path):
    rule = resolve_preprocessing(third_party_models / BLAZEFACE)
    assert rule.source == "none" and not rule.normalizes
    assert rule.describe() == "no normalization (the model declares none)"
    assert resolve_preprocessing(None).source == "none"  # a Keras source: only an override can say
    keras = tmp_path / "model.keras"
    keras.write_bytes(b"PK")
    assert resolve_preprocessing(keras, Preprocessing(mean=(1.0,), std=(2.0,))).source == "override"


def test_normalized_floats_for_a_pixel_rule_are_an_error(third_party_models, tmp_path):
    rule = resolve_preprocessing(third_party_models / MOBILENET)
    with pytest.raises(DataError, match="look normalized already") as e:
        check_data_fits(rule, "float32 array", -1.0, 1.0, where="calibration data 'x.npy'")
    assert "near -1" in e.value.message and "mean 0 and std 1" in (e.value.hint or "")
    assert check_data_fits(rule, PIXELS, 0, 255, where="photos") is None
    npy = tmp_path / "x.npy"
    np.save(npy, np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 3)).astype(np.float32))
    with pytest.raises(DataError, match=r"values in \[0\.00274, 0\.997\]"):
        check_dataset_fits(rule, str(npy), where="x.npy")


def test_raw_pixels_for_a_model_that_declares_nothing_warn(third_party_models):
    rule = resolve_preprocessing(third_party_models / BLAZEFACE)
    warning = check_data_fits(rule, PIXELS, 0, 255, where="photos")
    assert warning and "declares no preprocessing" in warning and "--mean/--std" in warning
    assert check_data_fits(rule, PIXELS, 0, 255, where="photos", float_input=False) is None  # uint8 input
    told = PreprocessingRule(Preprocessing(mean=(127.5,), std=(127.5,)), "override")
    assert check_data_fits(told, PIXELS, 0, 255, where="photos") is None


def test_the_agent_says_the_rule_of_the_package(third_party_models):
    from liteship.package.reference import declared_preprocessing, package_rule

    model = third_party_models / MOBILENET
    assert package_rule(model).describe() == "mean 127.5 std 127.5 from the model's TFLite metadata"
    assert package_rule(model, {"mean": [0], "std": [1]}).source == "liteship"
    assert declared_preprocessing(model) == package_rule(model).preprocessing
