"""Ops without a builtin kernel: which ops, which layer, what to do; and the Flex / custom escape hatches."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.convert import convert
from liteship.convert.ops import parse_unsupported_ops
from liteship.errors import UnsupportedOpsError


@pytest.fixture(scope="module")
def special_models():
    """Two tiny Keras models: one using Erf (a Flex op), one using BesselI0e (not even Flex)."""
    import keras
    import tensorflow as tf

    class ErfLayer(keras.layers.Layer):
        def call(self, x):
            return tf.math.erf(x)

    class BesselLayer(keras.layers.Layer):
        def call(self, x):
            return tf.math.bessel_i0e(x)

    def build(layer):
        return keras.Sequential(
            [
                keras.Input((4,), name="x"),
                keras.layers.Dense(4, name="fc"),
                layer,
                keras.layers.Dense(2, name="out"),
            ]
        )

    return build(ErfLayer(name="erf_layer")), build(BesselLayer(name="bessel_layer"))


def test_flex_op_is_reported_with_its_layer(special_models):
    erf_model, _ = special_models
    with pytest.raises(UnsupportedOpsError) as info:
        convert(erf_model)
    e = info.value
    assert e.ops == ["Erf"] and e.layers == {"Erf": ["erf_layer"]}
    assert "produced by Erf in erf_layer" in str(e) and "`allow_select_tf_ops`" in str(e)
    assert e.exit_code == 1 and "\n" not in str(e)


def test_flex_op_converts_with_select_tf_ops(special_models, tmp_path):
    erf_model, _ = special_models
    report = convert(erf_model, tmp_path / "erf.tflite", allow_select_tf_ops=True)
    assert report.needs_flex and not report.needs_custom and report.ops["FlexErf"] == 1
    assert any("Flex" in w for w in report.warnings)
    from liteship.model.flatbuffer import read_liteship_info

    assert read_liteship_info(report.output)["needs_flex"] is True
    # the builtin-only LiteRT interpreter refuses it with a message that says why
    from liteship.errors import ModelError
    from liteship.runtime import LiteRTRunner

    with pytest.raises(ModelError, match="Flex"):
        LiteRTRunner(report.output)


def test_op_without_flex_kernel_points_to_custom_ops(special_models):
    _, bessel_model = special_models
    for flex in (False, True):
        with pytest.raises(UnsupportedOpsError, match="`allow_custom_ops`") as info:
            convert(bessel_model, allow_select_tf_ops=flex)
        assert info.value.ops == ["BesselI0e"] and info.value.layers == {"BesselI0e": ["bessel_layer"]}


def test_custom_op_converts_with_allow_custom_ops(special_models):
    _, bessel_model = special_models
    report = convert(bessel_model, None, allow_custom_ops=True)
    assert report.needs_custom and not report.needs_flex and report.ops["BesselI0e"] == 1


def test_tf_function_location_is_the_users_source_line():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)], autograph=False)
    def f(x):
        return tf.math.erf(x)

    with pytest.raises(UnsupportedOpsError) as info:
        convert(f)
    (where,) = info.value.layers["Erf"]
    assert where.startswith(__file__) and where.rsplit(":", 1)[1].isdigit()


def test_parse_from_message_text_alone():
    """Older converters give only text: 'Flex ops: …' lists and loc(fused[…]) scopes."""
    text = (
        'loc(callsite(fused["Erf:", "sequential_1/erf_layer_1/Erf@__inference_f_1"] at x)): '
        "'tf.Erf' op is neither a custom op nor a flex op\nerror: failed while converting: 'main':\n"
        "Some ops are not supported by the native TFLite runtime, you can enable TF kernels fallback "
        "using TF Select.\nFlex ops: Erf, MatrixInverse\n"
    )
    found = parse_unsupported_ops(Exception(text), ["fc", "erf_layer"])
    assert found.flex == ["Erf", "MatrixInverse"] and found.layers == {"Erf": ["erf_layer"]}
    assert parse_unsupported_ops(ValueError("something else broke")) is None


def test_op_histogram_counts_every_op(tmp_path, saved_model_dir):
    report = convert(saved_model_dir, None)
    assert report.ops["CONV_2D"] == 2 and report.ops["FULLY_CONNECTED"] == 2
    assert sum(report.ops.values()) == len(
        __import__("liteship.model.flatbuffer", fromlist=["x"])
        .load_model(report.model_bytes)
        .model.subgraphs[0]
        .operators
    )
    assert np.isclose(report.ratio_to_float32, 1.0, atol=0.01)
