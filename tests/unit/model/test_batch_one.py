"""batch_one_copy: a dynamic-batch model fixed at batch 1 for accelerators that take static shapes."""

from __future__ import annotations

import numpy as np

from liteship.model.flatbuffer import batch_one_copy, load_model, pack_model
from liteship.model.inspect import inspect_model
from liteship.runtime import LiteRTRunner


def _signatures(data: bytes) -> list[list[int]]:
    model = load_model(data).model
    return [
        [int(d) for d in t.shapeSignature]
        for sg in model.subgraphs
        for t in sg.tensors
        if t.shapeSignature is not None and len(t.shapeSignature)
    ]


def test_keras_flatten_becomes_static_and_outputs_are_identical(tflite_float, digits):
    data = tflite_float.read_bytes()
    assert any(-1 in s for s in _signatures(data))  # the converter's -1 batch
    fixed = batch_one_copy(data)
    assert fixed is not None and not any(-1 in s for s in _signatures(fixed))
    before = set(inspect_model(data).ops)
    after = set(inspect_model(fixed).ops)
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= before and not after & {"SHAPE", "STRIDED_SLICE", "PACK"}
    x = digits[2][:5]
    with LiteRTRunner(data) as a, LiteRTRunner(fixed) as b:
        want, got = a.infer(x), b.infer(x)
        assert [s.shape for s in b.input_specs] == [(1, 8, 8, 1)]
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])  # exact: the same kernels on the same numbers
    assert batch_one_copy(fixed) is None  # nothing dynamic left


def test_a_dynamic_dimension_other_than_the_batch_is_left_alone(tflite_float):
    model = load_model(tflite_float.read_bytes()).model
    t = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]]
    t.shapeSignature = [1, -1, 8, 1]  # a "sequence length": fixing it at 1 would change the model
    assert batch_one_copy(pack_model(model)) is None
