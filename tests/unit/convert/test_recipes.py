"""One real conversion per recipe of the digits CNN: dtypes, quantization parameters, size, LiteRT runs it."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.convert import RECIPES, convert
from liteship.errors import UsageError
from liteship.model.flatbuffer import load_model, read_liteship_info
from liteship.runtime import LiteRTRunner


def _tensor_types(path) -> set[str]:
    from liteship.convert.ops import _dtype

    model = load_model(path).model
    return {_dtype(t.type) for sg in model.subgraphs for t in sg.tensors}


def _accuracy(path, digits) -> float:
    x, y = digits[2][:100], digits[3][:100]
    with LiteRTRunner(path) as runner:
        name = runner.input_specs[0].name
        probs = np.concatenate(
            [next(iter(runner.infer({name: x[i : i + 1]}).values())) for i in range(len(x))]
        )
    return float((probs.argmax(axis=1) == y).mean())


@pytest.fixture(scope="module")
def float_size(saved_model_dir, tmp_path_factory) -> int:
    return convert(saved_model_dir, tmp_path_factory.mktemp("f") / "f.tflite", progress=False).size_bytes


@pytest.mark.parametrize(
    ("recipe", "io", "ratio"),
    [
        ("none", "float32", (0.99, 1.01)),
        ("dynamic", "float32", (0.2, 0.4)),
        ("int8", "int8", (0.2, 0.4)),
        ("int8-fallback", "float32", (0.2, 0.4)),
        ("float16", "float32", (0.45, 0.65)),
        ("int16x8", "float32", (0.2, 0.45)),
    ],
)
def test_each_recipe_converts_and_runs(
    recipe, io, ratio, saved_model_dir, calib_npy, digits, float_size, tmp_path
):
    out = tmp_path / f"{recipe}.tflite"
    report = convert(saved_model_dir, out, quantize=recipe, calibration=calib_npy, calibration_samples=50)

    assert out.read_bytes() == report.model_bytes and report.size_bytes == out.stat().st_size
    assert (report.recipe, report.io_type, report.method) == (recipe, io, "from_saved_model")
    assert [s.dtype for s in report.inputs] == [io] and [s.dtype for s in report.outputs] == [io]
    assert ratio[0] < report.size_bytes / float_size < ratio[1]
    # the float32 size is estimated from the weights, not converted again: it must be close to the real one
    assert report.float32_size_bytes == pytest.approx(float_size, rel=0.06)
    assert report.calibration_samples == (50 if RECIPES[recipe].needs_calibration else 0)
    assert report.ops["CONV_2D"] == 2 and not report.needs_flex and not report.needs_custom
    assert _accuracy(out, digits) > 0.85

    types = _tensor_types(out)
    if recipe in ("dynamic", "int8", "int8-fallback"):
        assert "int8" in types
    if recipe == "float16":
        assert "float16" in types and "int8" not in types
    if recipe == "int16x8":
        assert "int16" in types
    if recipe == "none":
        assert types <= {"float32", "int32"}


def test_int8_io_has_real_quantization_params(saved_model_dir, calib_npy, tmp_path):
    report = convert(saved_model_dir, tmp_path / "m.tflite", quantize="int8", calibration=calib_npy)
    for spec in (*report.inputs, *report.outputs):
        assert spec.dtype == "int8" and spec.scale and spec.scale > 0
        assert spec.zero_point is not None and -128 <= spec.zero_point <= 127
    # digits pixels are 0..1: the input scale spans about that range over 256 steps
    assert report.inputs[0].scale == pytest.approx(1 / 255, rel=0.05)
    assert report.calibration_samples == 200


@pytest.mark.parametrize(
    ("recipe", "io"), [("int8", "uint8"), ("int16x8", "int16"), ("int8-fallback", "int8")]
)
def test_integer_io_types(recipe, io, saved_model_dir, calib_npy, tmp_path):
    report = convert(
        saved_model_dir,
        tmp_path / "m.tflite",
        quantize=recipe,
        io_type=io,
        calibration=calib_npy,
        calibration_samples=20,
    )
    assert report.inputs[0].dtype == io and report.outputs[0].dtype == io
    with LiteRTRunner(report.output) as runner:
        (y,) = runner.infer({runner.input_specs[0].name: np.zeros((1, 8, 8, 1), np.float32)}).values()
    assert y.shape == (1, 10) and y.dtype == np.float32  # dequantized by the runner


def test_liteship_record_travels_with_the_model(saved_model_dir, calib_npy, digits, tmp_path):
    report = convert(
        saved_model_dir,
        tmp_path / "m.tflite",
        quantize="int8",
        calibration=calib_npy,
        calibration_samples=30,
        preprocessing={"mean": [0.5], "std": [2.0]},
    )
    info = read_liteship_info(report.output)
    assert info["recipe"] == "int8" and info["io_type"] == "int8"
    assert info["preprocessing"]["mean"] == [0.5] and info["preprocessing"]["std"] == [2.0]
    assert info["source"] == str(saved_model_dir) and info["liteship_version"]
    (rng,) = info["calibration"]["range"].values()
    x = (digits[0][:30] - 0.5) / 2.0  # the preprocessing was applied to the calibration data
    assert rng == pytest.approx({"min": float(x.min()), "max": float(x.max())})
    assert info["calibration"]["samples"] == 30
    assert report.calibration_range == info["calibration"]["range"]


@pytest.mark.parametrize("recipe", ["int8", "int8-fallback", "int16x8"])
def test_calibrated_recipe_without_calibration_names_the_parameter(recipe, saved_model_dir):
    with pytest.raises(UsageError, match=r"`calibration`") as info:
        convert(saved_model_dir, quantize=recipe)
    assert recipe in str(info.value) and info.value.exit_code == 2


@pytest.mark.parametrize(
    ("recipe", "io"),
    [("none", "int8"), ("dynamic", "uint8"), ("float16", "int8"), ("int8", "int16"), ("int16x8", "int8")],
)
def test_io_type_the_recipe_cannot_make(recipe, io, saved_model_dir):
    with pytest.raises(UsageError, match="io_type"):
        convert(saved_model_dir, quantize=recipe, io_type=io, calibration=np.zeros((1, 8, 8, 1)))


def test_unknown_recipe(saved_model_dir):
    with pytest.raises(UsageError, match="int16x8"):
        convert(saved_model_dir, quantize="int4")


def test_keep_float_layers_keeps_those_ops_in_float(keras_model, digits, tmp_path):
    report = convert(
        keras_model,
        tmp_path / "m.tflite",
        quantize="int8-fallback",
        calibration=digits[0][:40],
        keep_float_layers=["FULLY_CONNECTED"],
    )
    model = load_model(report.output).model
    from liteship.convert.ops import _dtype, op_name

    for sg in model.subgraphs:
        for op in sg.operators:
            name = op_name(model, op.opcodeIndex)
            if name in ("FULLY_CONNECTED", "CONV_2D"):
                weights = _dtype(sg.tensors[op.inputs[1]].type)
                assert weights == ("float32" if name == "FULLY_CONNECTED" else "int8"), name
    assert report.keep_float_layers == ("FULLY_CONNECTED",)
    assert _accuracy(report.output, digits) > 0.85


def test_keep_float_layers_needs_an_int8_recipe(saved_model_dir):
    with pytest.raises(UsageError, match="keep_float_layers"):
        convert(saved_model_dir, quantize="float16", keep_float_layers=["MEAN"])


def test_calibration_from_a_callable_and_bad_shapes(keras_model, digits, tmp_path):
    from liteship.errors import DataError

    def samples():
        return [digits[0][i] for i in range(10)]

    report = convert(keras_model, None, quantize="int8", calibration=samples)
    assert report.calibration_samples == 10 and report.output is None and report.model_bytes
    with pytest.raises(DataError, match=r"shape \[1, 4, 4, 1\]"):
        convert(keras_model, None, quantize="int8", calibration=np.zeros((5, 4, 4, 1), np.float32))
