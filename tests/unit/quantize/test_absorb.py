"""High-bias absorption on real Keras models, converted by the real TFLite converter and run in LiteRT:
float outputs kept on the calibration data, layer 1's int8 range narrowed, int8 SQNR up."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.quantize.absorb import absorb_high_biases

# On the data ``c`` was taken from, absorption only reorders float32 additions (``(z + b − c) + W·c``):
# round-off relative to the largest output.
ABSORB_TOLERANCE = 1e-4
HIGH_BIAS = 20.0  # tests/conftest.py::build_high_bias_cnn


@pytest.fixture(scope="module")
def high_bias(high_bias_model, digits):
    model = high_bias_model
    calib = digits[0][:200]
    absorbed, report = absorb_high_biases(model, calib)
    return model, absorbed, report, calib


def test_absorption_moves_the_offset_and_keeps_float_outputs(high_bias, digits):
    model, absorbed, report, calib = high_bias
    assert report.method == "data" and report.samples == 200
    pairs = {(p.first, p.second): p for p in report.pairs}
    first = pairs[("c1", "c2")]
    assert first.channels >= 4 and first.max_shift > HIGH_BIAS - 2
    assert first.range_before > HIGH_BIAS and first.range_after < first.range_before / 5
    assert report.total_bias_moved == pytest.approx(sum(p.bias_moved for p in report.pairs))
    ref = model.predict(calib, verbose=0)
    scale = float(np.abs(ref).max())
    assert report.max_abs_diff is not None and report.max_abs_diff < ABSORB_TOLERANCE * scale
    np.testing.assert_allclose(absorbed.predict(calib, verbose=0), ref, atol=ABSORB_TOLERANCE * scale)
    b_orig = model.get_layer("c1").get_weights()[1]
    b_new = absorbed.get_layer("c1").get_weights()[1]
    assert np.all(b_new <= b_orig) and float((b_orig - b_new).sum()) == pytest.approx(
        first.bias_moved, rel=1e-5
    )
    assert any(s.first == "head" for s in report.skipped)  # a model output: nothing after it to compensate


def test_int8_range_of_layer_1_shrinks_and_output_sqnr_improves(high_bias, digits, activation_scale):
    from liteship.convert import convert
    from liteship.validate import validate

    model, absorbed, _, calib = high_bias
    test = digits[2][:200]
    plain = convert(model, quantize="int8", calibration=calib, progress=False).model_bytes
    fixed = convert(model, quantize="int8", calibration=calib, absorb_high_bias=True, progress=False)
    assert fixed.graph_fixes and "absorb_high_bias" in fixed.graph_fixes
    assert activation_scale(fixed.model_bytes, "c1") < activation_scale(plain, "c1") / 5  # [0, ~21] → [0, ~2]
    sqnr_plain = validate(plain, model, test, progress=False).summary()["sqnr_db"]
    sqnr_fixed = validate(fixed.model_bytes, model, test, progress=False).summary()["sqnr_db"]
    assert sqnr_fixed > sqnr_plain + 3.0, (sqnr_plain, sqnr_fixed)  # measured: ~40 → ~48 dB


def test_pairs_that_cannot_stay_exact_are_skipped_and_said_so():
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="a")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="padded")(x)  # zero border
    x = keras.layers.Conv2D(4, 1, use_bias=False, name="nobias")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    x = keras.layers.Conv2D(4, 1, activation="relu", name="last")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inp, out)
    for name in ("a", "padded", "last"):
        k, b = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([k, b + 5.0])
    data = np.random.default_rng(0).uniform(size=(32, 8, 8, 2)).astype(np.float32)
    absorbed, report = absorb_high_biases(model, data)
    skipped = {s.first: s.reason for s in report.skipped}
    assert "pads its input with zeros" in skipped["a"]
    assert "'nobias' has no bias (and no BatchNormalization after it)" in skipped["padded"]
    assert "clips at 6" in skipped["nobias"]  # equalization's pair finder: a shift moves the clip too
    assert [(p.first, p.second) for p in report.pairs] == [("last", "head")]  # through Flatten
    ref = model.predict(data, verbose=0)
    assert report.max_abs_diff < ABSORB_TOLERANCE * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(
        absorbed.predict(data, verbose=0), ref, atol=ABSORB_TOLERANCE * max(1.0, float(np.abs(ref).max()))
    )


def test_a_bias_less_consumer_takes_the_shift_in_its_batchnorm_and_bn_statistics_work_without_data():
    """Conv → BN → ReLU → 1×1 conv without bias → BN (MobileNetV2's block shape, ReLU for ReLU6): the
    second BN's moving mean takes ``W·c``; with no data, ``c = max(0, β − 3|γ|)`` (the paper's rule)."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(5, 3, use_bias=False, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(4, 1, use_bias=False, name="expand")(x)
    out = keras.layers.BatchNormalization(name="expand_bn")(x)
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")
    gamma, beta, mean, var = bn.get_weights()
    beta[:] = [10.0, 8.0, 0.0, 10.0, 1.0]
    gamma[:] = [1.0, -0.5, 1.0, 0.2, 1.0]
    bn.set_weights([gamma, beta, mean, var])
    data = np.random.default_rng(0).normal(size=(32, 6, 6, 3)).astype(np.float32) * 0.1

    absorbed, report = absorb_high_biases(model, data)
    assert [(p.first, p.second) for p in report.pairs] == [("bn", "expand")]
    moved = (
        absorbed.get_layer("expand_bn").moving_mean.numpy() - model.get_layer("expand_bn").moving_mean.numpy()
    )
    assert np.abs(moved).max() > 1.0  # W·c went into the moving mean, the conv has no bias
    ref = model.predict(data, verbose=0)
    assert report.max_abs_diff < ABSORB_TOLERANCE * max(1.0, float(np.abs(ref).max()))

    _, paper = absorb_high_biases(model, None, check_data=data)
    assert paper.method == "batchnorm" and paper.samples == 0
    expected = np.maximum(0.0, beta - 3.0 * np.abs(gamma))  # [7, 6.5, 0, 9.4, 0]
    assert paper.pairs[0].channels == 3
    assert paper.total_bias_moved == pytest.approx(float(expected.sum()), rel=1e-5)
    # the pre-activations stay within 3σ of β on this data, so the float outputs hold here too
    assert paper.max_abs_diff < ABSORB_TOLERANCE * max(1.0, float(np.abs(ref).max()))


def test_eligible_pairs_names_what_cannot_be_absorbed_before_any_data_is_read():
    # what the repair checks before it converts an absorption variant (nothing eligible: skipped)
    from liteship._tf import import_tf
    from liteship.quantize.absorb import eligible_pairs

    import_tf()
    import keras

    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a"),
            keras.layers.Conv2D(4, 3, padding="same", name="b"),
        ]
    )
    eligible, skipped = eligible_pairs(model)
    assert eligible == []
    reasons = {(s.first, s.second): s.reason for s in skipped}
    assert "pads its input with zeros" in reasons[("a", "b")]  # (b, the output, has no consumer at all)
