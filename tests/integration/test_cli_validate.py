"""`liteship validate` through the real console script."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def damaged(keras_model, tmp_path_factory):
    """The digits CNN with its last Dense layer's classes rotated by one, converted by TensorFlow."""
    import keras
    import tensorflow as tf

    out = tmp_path_factory.mktemp("damaged")
    copy = keras.models.clone_model(keras_model)
    copy.set_weights(keras_model.get_weights())
    kernel, bias = copy.get_layer("probs").get_weights()
    copy.get_layer("probs").set_weights([np.roll(kernel, 1, axis=1), np.roll(bias, 1)])
    copy.export(str(out / "sm"), verbose=False)
    path = out / "damaged.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(out / "sm")).convert())
    return path


def test_identical_models_pass_with_full_agreement(cli, tflite_int8, val_npz):
    p = cli(
        "validate", str(tflite_int8), "--reference", str(tflite_int8), "--data", str(val_npz),
        "--min-agreement", "1", "--max-accuracy-drop", "0", "--atol", "0", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["passed"] is True and d["samples"] == 200
    assert d["agreement"][0]["top1"] == 1.0 and d["outputs"][0]["identical"] is True
    assert d["outputs"][0]["sqnr_db"] is None  # infinite
    assert [g["name"] for g in d["gates"]] == ["min_agreement", "max_accuracy_drop", "allclose"]


def test_table_against_keras_with_layerwise(cli, tflite_int8, keras_path, val_npz):
    p = cli(
        "validate", str(tflite_int8), "--reference", str(keras_path), "--data", str(val_npz),
        "--limit", "50", "--min-sqnr", "20", "--layerwise",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for text in ("outputs", "classifier", "gates", "min_sqnr", "pass", "layerwise", "CONV_2D", "50 samples"):
        assert text in out, out
    assert "probs" in out and "matched by order" in out.replace("\n", " ")
    assert "Traceback" not in p.stderr


def test_a_damaged_candidate_exits_3_and_lists_every_failure(cli, damaged, keras_path, val_npz):
    p = cli(
        "validate", str(damaged), "--reference", str(keras_path), "--data", str(val_npz),
        "--min-agreement", "0.98", "--max-accuracy-drop", "1", "--min-sqnr", "15", "--json",
    )  # fmt: skip
    assert p.returncode == 3, p.stderr
    d = json.loads(p.stdout)  # the report is still printed
    assert d["passed"] is False
    output = d["outputs"][0]["name"]
    err = " ".join(p.stderr.split())
    assert err.startswith("error: 3 validation gate(s) failed")
    for gate in ("min_agreement 0.98", "max_accuracy_drop 1", "min_sqnr 15"):
        assert gate in err, err
    assert err.count(f"output '{output}'") == 3
    assert d["agreement"][0]["top1"] < 0.5


def test_mean_std_override_and_usage_errors(cli, tflite_float, keras_path, digits, tmp_path):
    raw = tmp_path / "pixels.npy"
    np.save(raw, digits[2][:20] * 255.0)
    p = cli(
        "validate", str(tflite_float), "--reference", str(keras_path), "--data", str(raw),
        "--mean", "0", "--std", "255", "--atol", "1e-5", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["preprocessing"]["std"] == [255.0] and d["preprocessing_from"] == "argument"
    assert d["has_labels"] is False and d["agreement"][0]["candidate_accuracy"] is None
    missing = cli("validate", str(tflite_float), "--data", str(raw))
    assert missing.returncode == 2 and "--reference" in missing.stderr


@pytest.fixture(scope="module")
def wrong_labels_npz(val_npz, tmp_path_factory):
    """The validation set with every label moved to the next class: any model scores ~0 %."""
    with np.load(val_npz) as d:
        x, y = d["x"], d["y"]
    path = tmp_path_factory.mktemp("wrong") / "wrong.npz"
    np.savez(path, x=x, y=(y + 1) % 10)
    return path


def test_min_accuracy_fails_a_model_as_bad_as_its_reference(cli, tflite_int8, wrong_labels_npz, val_npz):
    """Issue 22 (9): relative gates pass a model compared with itself; the absolute floor does not."""
    args = ["validate", str(tflite_int8), "--reference", str(tflite_int8), "--min-agreement", "1"]
    p = cli(*args, "--data", str(wrong_labels_npz), "--min-accuracy", "0.9", "--json")
    assert p.returncode == 3, p.stderr
    d = json.loads(p.stdout)
    gate = next(g for g in d["gates"] if g["name"] == "min_accuracy")
    assert gate["value"] < 0.2 and gate["threshold"] == 0.9 and not gate["passed"]
    assert "top-1 accuracy" in p.stderr and "min_accuracy 0.9" in p.stderr and "Traceback" not in p.stderr
    assert cli(*args, "--data", str(val_npz), "--min-accuracy", "0.8").returncode == 0
    x = wrong_labels_npz.with_name("x.npy")
    with np.load(val_npz) as z:
        np.save(x, z["x"])
    p = cli(*args, "--data", str(x), "--min-accuracy", "0.9")
    assert p.returncode == 1 and "min_accuracy needs labels" in p.stderr, p.stderr


@pytest.mark.parametrize("bad", [99, -5])
def test_labels_outside_the_models_classes_are_refused(cli, tflite_int8, digits, tmp_path, bad):
    """Issue 21 item 14: labels no class can match used to give exit 0 and a silent 0 % accuracy."""
    x, y = digits[2][:20], digits[3][:20].copy()
    y[3] = bad
    data = tmp_path / "labels.npz"
    np.savez(data, x=x, y=y)
    p = cli("validate", str(tflite_int8), "--reference", str(tflite_int8), "--data", str(data), "--json")
    assert p.returncode == 1, p.stdout
    err = " ".join(p.stderr.split())
    assert "1 of 20 labels" in err and "outside the model's classes 0..9" in err and f"found {bad}" in err
    assert "Traceback" not in p.stderr and p.stdout == ""
