"""Equalization and bias correction on real Keras models: float outputs kept, ranges balanced."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.quantize import correct_bias, equalize
from liteship.quantize.bias import quantize_weights

# Equalization only rescales by positive factors: float32 round-off, relative to the output scale.
EQUALIZE_TOLERANCE = 1e-4
# Bias correction moves biases by the int8 rounding shift it measures: probabilities may move by a few
# thousandths, never enough to change a prediction on this model.
BIAS_TOLERANCE = 0.05


def test_equalization_balances_the_outlier_and_keeps_float_outputs(outlier_model, digits):
    x = digits[2][:64]
    eq, report = equalize(outlier_model, x)
    first = next(p for p in report.pairs if p.first == "c1")
    assert first.second == "c2" and first.spread_before > 500 and first.spread_after < 5
    assert report.max_abs_diff is not None and report.max_abs_diff < EQUALIZE_TOLERANCE
    ref, out = outlier_model.predict(x, verbose=0), eq.predict(x, verbose=0)
    np.testing.assert_allclose(out, ref, atol=EQUALIZE_TOLERANCE)
    # the original is untouched
    assert (
        np.abs(outlier_model.get_layer("c1").get_weights()[0]).max()
        > 10 * np.abs(eq.get_layer("c1").get_weights()[0]).max()
    )
    assert any(s.first == "probs" and "softmax" in s.reason for s in report.skipped)


def test_clipping_activations_are_skipped_and_said_so():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, name="a"),
            keras.layers.ReLU(max_value=6.0, name="relu6"),
            keras.layers.Conv2D(4, 3, name="b"),
            keras.layers.DepthwiseConv2D(1, activation="relu", name="dw"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(3, name="head"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 2)).astype(np.float32)
    eq, report = equalize(model, x)
    skipped = {s.first: s.reason for s in report.skipped}
    assert "clips at 6" in skipped["a"]
    # b → dw: a depthwise consumer takes the scale on its own kernel slice (issue 20); dw → head: through Flatten
    assert [(p.first, p.second) for p in report.pairs] == [("b", "dw"), ("dw", "head")]
    assert "b" not in skipped
    assert report.max_abs_diff < EQUALIZE_TOLERANCE * max(
        1.0, float(np.abs(model.predict(x, verbose=0)).max())
    )


def test_bias_correction_reduces_the_int8_weight_shift_and_keeps_predictions(keras_model, digits):
    x = digits[0][:200]
    corrected, report = correct_bias(keras_model, x)
    assert [c.name for c in report.layers] == ["conv1", "conv2", "fc1", "probs"]
    assert report.output_error_after < report.output_error_before
    assert report.max_abs_diff < BIAS_TOLERANCE
    test = digits[2]
    np.testing.assert_array_equal(
        corrected.predict(test, verbose=0).argmax(1), keras_model.predict(test, verbose=0).argmax(1)
    )


def test_weights_round_like_tflite_per_channel():
    w = np.array([[0.5, -2.0], [1.0, 0.01]], dtype=np.float32)  # Dense (in, out): channels are columns
    q = quantize_weights(w, "Dense")
    assert q[0, 1] == -2.0 and q[0, 0] == pytest.approx(0.5, abs=1.0 / 254)
    assert np.abs(q - w).max() <= np.abs(w).max(axis=0).max() / 254 + 1e-7


def test_bias_correction_goes_through_batchnorm_when_the_conv_has_no_bias():
    import keras

    from liteship.quantize.bias import targets

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, use_bias=False, name="c"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(6.0),
            keras.layers.DepthwiseConv2D(3, use_bias=False, name="dw"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, name="d"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype(np.float32)
    rng = np.random.default_rng(1)
    for name in ("bn", "bn2"):
        bn = model.get_layer(name)
        bn.moving_variance.assign(rng.uniform(0.5, 2, size=bn.moving_variance.shape).astype(np.float32))
    assert [(t.layer.name, t.norm.name if t.norm else None) for t in targets(model)] == [
        ("c", "bn"),
        ("dw", "bn2"),
        ("d", None),
    ]
    corrected, report = correct_bias(model, x)
    assert report.output_error_after < report.output_error_before
    moved = corrected.get_layer("bn2").moving_mean.numpy() - model.get_layer("bn2").moving_mean.numpy()
    assert np.abs(moved).max() == pytest.approx(report.layers[1].max_shift, rel=1e-3)
    assert report.max_abs_diff < BIAS_TOLERANCE


def test_equalization_goes_through_batchnorm_and_keeps_float_outputs():
    """Conv (no bias) → BatchNormalization → Conv, as MobileNetV2's project → expand: the normalization's
    γ/β carry the scale (TFLite folds them into the conv), so the pair is equalized with no graph change;
    a BN followed by ReLU6 is skipped and said so."""
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, use_bias=False, padding="same", name="project")(inp)
    x = keras.layers.BatchNormalization(name="project_bn")(x)
    x = keras.layers.Conv2D(4, 1, use_bias=False, name="expand")(x)
    x = keras.layers.BatchNormalization(name="expand_bn")(x)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    out = keras.layers.Conv2D(2, 1, name="head")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    bn = model.get_layer("project_bn")
    gamma, beta, mean, var = bn.get_weights()
    gamma[0] = 300.0  # an outlier channel after folding, as BatchNormalization folding creates
    bn.set_weights(
        [gamma, beta, rng.normal(size=6).astype(np.float32), var + rng.uniform(size=6).astype(np.float32)]
    )
    x = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    eq, report = equalize(model, x)
    pair = next(p for p in report.pairs if p.first == "project_bn")
    assert pair.second == "expand" and pair.spread_before > 50 and pair.spread_after < pair.spread_before / 10
    skipped = {s.first: s.reason for s in report.skipped}
    assert "clips at 6" in skipped["expand_bn"]
    ref = model.predict(x, verbose=0)
    assert report.max_abs_diff < EQUALIZE_TOLERANCE * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(
        eq.predict(x, verbose=0), ref, atol=EQUALIZE_TOLERANCE * float(np.abs(ref).max())
    )
