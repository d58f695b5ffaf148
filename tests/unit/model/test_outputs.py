"""liteship.model.outputs: probabilities or logits, read from the op producing an output, on models made
by the real converter (float, and int8 with float I/O whose softmax reaches the output through
DEQUANTIZE)."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.model.flatbuffer import load_model
from liteship.model.outputs import producer_op, score_kind


@pytest.fixture(scope="module")
def two_heads():
    """A model with a sigmoid head behind a Reshape and a plain logits head."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, activation="relu")(x)
    probs = keras.layers.Reshape((2, 2), name="probs")(keras.layers.Dense(4, activation="sigmoid")(h))
    logits = keras.layers.Dense(3, name="logits")(h)
    return keras.Model(x, [probs, logits])


def _convert(model, int8: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        rng = np.random.default_rng(0)
        conv.representative_dataset = lambda: (
            [rng.normal(size=(1, 6)).astype(np.float32)] for _ in range(20)
        )
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert()


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_the_producing_op_decides_through_value_preserving_ops(two_heads, int8):
    loaded = load_model(_convert(two_heads, int8))
    sg = loaded.model.subgraphs[0]
    names = [sg.tensors[t].name.decode() for t in sg.outputs]
    kinds = {n: score_kind(loaded, n) for n in names}
    assert sorted(kinds.values()) == ["logits", "probabilities"], kinds
    assert sorted(producer_op(loaded, n) for n in names) == ["FULLY_CONNECTED", "LOGISTIC"]
    # by index, and by signature output name, the same answers
    assert [score_kind(loaded, i) for i in range(len(names))] == [kinds[n] for n in names]
    (sig,) = loaded.model.signatureDefs
    for m in sig.outputs:  # signature keys (output_0, …) are not tensor names: looked up separately
        assert m.name.decode() not in kinds
        assert score_kind(loaded, m.name.decode()) == kinds[sg.tensors[m.tensorIndex].name.decode()]
    if int8:  # the float outputs are DEQUANTIZE ops: followed back to what they dequantize
        ops = {loaded.model.operatorCodes[op.opcodeIndex].builtinCode for op in sg.operators}
        from ai_edge_litert import schema_py_generated as schema

        assert schema.BuiltinOperator.DEQUANTIZE in ops


def test_softmax_classifiers_and_unknown_outputs(tflite_float, tflite_int8, third_party_models):
    assert score_kind(tflite_float) == "probabilities"
    assert score_kind(tflite_int8) == "probabilities"
    assert score_kind(third_party_models / "mobilenet_v1_0.25_224_quant.tflite") == "probabilities"
    assert score_kind(tflite_float, "no such output") is None  # callers fall back to the per-row rule
    assert score_kind(tflite_float, 5) is None
