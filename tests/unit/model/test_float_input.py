"""float_input_copy: a quantized model fed floats, quantized by LiteRT's own QUANTIZE op (issue 22 (14))."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.model.flatbuffer import load_model, schema
from liteship.model.float_input import SUFFIX, float_input_copy
from liteship.model.inspect import inspect_model
from liteship.runtime import LiteRTRunner, quantize

MOBILENET_QUANT = "mobilenet_v1_0.25_224_quant.tflite"  # TOCO-era uint8, from TensorFlow's hosted models


def _photos() -> list[np.ndarray]:
    """Two of scikit-image's bundled photos, centre-cropped and resized to 224x224, as 0..255 floats."""
    data = pytest.importorskip("skimage.data")
    transform = pytest.importorskip("skimage.transform")
    out = []
    for image in (data.chelsea(), data.coffee()):
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        crop = image[top : top + side, left : left + side]
        out.append((transform.resize(crop, (224, 224), anti_aliasing=True) * 255).astype(np.float32)[None])
    return out


def test_a_toco_uint8_model_gets_a_float_input_and_one_quantize_op(third_party_models):
    data = (third_party_models / MOBILENET_QUANT).read_bytes()
    copy = float_input_copy(data)
    assert copy is not None and copy.added_ops == 1
    model = load_model(copy.data).model
    sg = model.subgraphs[0]
    (index,) = [int(i) for i in sg.inputs]
    assert copy.inputs == (index,)
    t = sg.tensors[index]
    original = load_model(data).model.subgraphs[0].tensors[int(load_model(data).model.subgraphs[0].inputs[0])]
    assert t.type == schema.TensorType.FLOAT32 and t.name == original.name
    assert list(t.shape) == list(original.shape)
    first = sg.operators[0]
    assert [int(i) for i in first.outputs] == [int(i) for i in load_model(data).model.subgraphs[0].inputs]
    assert sg.tensors[int(first.outputs[0])].name == original.name + SUFFIX
    ((dtype, scale, zero_point),) = copy.quantization
    assert (dtype, zero_point) == ("uint8", int(original.quantization.zeroPoint[0]))
    assert scale == pytest.approx(float(original.quantization.scale[0]))
    ops = inspect_model(copy.data).ops
    assert ops["QUANTIZE"] == 1 + inspect_model(data).ops.get("QUANTIZE", 0)


def test_float_models_and_float_copies_are_left_alone(tflite_float, third_party_models):
    assert float_input_copy(tflite_float.read_bytes()) is None
    copy = float_input_copy((third_party_models / MOBILENET_QUANT).read_bytes())
    assert copy is not None and float_input_copy(copy.data) is None  # its input is float now


def test_real_photos_classify_alike_and_the_runner_reports_the_quantized_input(third_party_models):
    """The runner quantizes in the graph with LiteRT's kernel: a raw run fed that kernel's bytes (ties to
    even) gives the same outputs; quantize() (ties away from zero) differs only on exact ties."""
    path = third_party_models / MOBILENET_QUANT
    with LiteRTRunner(path, num_threads=1) as r, LiteRTRunner(path, num_threads=1, raw=True) as raw:
        (inp,), (out,) = r.input_specs, r.output_specs
        assert inp == raw.input_specs[0] and inp.dtype == "uint8"  # the user sees the model's own tensor
        assert (
            r.delegate_summary() == raw.delegate_summary()
        )  # the model's own ops, not the runner's QUANTIZE
        for photo in _photos():
            x = (photo / np.float32(127.5) - 1).astype(
                np.float32
            )  # the model's [-1, 1] (scale 1/128, zp 128)
            even = np.rint(x * (np.float32(1) / np.float32(inp.scale))) + inp.zero_point
            even = np.clip(even, 0, 255).astype(np.uint8)
            away = quantize(x, inp.scale, inp.zero_point, np.uint8)
            halfway = np.abs(x / np.float32(inp.scale) % 1 - 0.5) < 1e-6
            assert np.all((even == away) | halfway)
            (got,) = r.infer(x).values()
            (want,) = raw.infer(even).values()
            np.testing.assert_array_equal(
                got, (want.astype(np.float32) - out.zero_point) * np.float32(out.scale)
            )
            assert got[0].argmax() == raw.infer(away)[raw.output_specs[0].name][0].argmax()
