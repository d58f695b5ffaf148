"""Float .tflite sources through ai-edge-quantizer: recipes, validation against the float file, metadata
carried over, and the bad inputs (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="the quantizer extra (pip install 'liteship[quantizer]')")

from liteship.convert import convert  # noqa: E402
from liteship.errors import ConversionError, UsageError  # noqa: E402
from liteship.model import load_model  # noqa: E402
from liteship.model.flatbuffer import read_liteship_info, schema  # noqa: E402


def _op_input_types(data: bytes) -> dict[str, set[str]]:
    """{op name: the types of its non-constant and constant inputs}."""
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    m = load_model(data).model
    sg = m.subgraphs[0]
    out: dict[str, set[str]] = {}
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        out.setdefault(name, set()).update(types[sg.tensors[i].type] for i in op.inputs if i >= 0)
    return out


@pytest.fixture(scope="module")
def int8(tflite_float, calib_npy, tmp_path_factory):
    out = tmp_path_factory.mktemp("aeq") / "digits.int8.tflite"
    return convert(tflite_float, out, quantize="int8", calibration=calib_npy, calibration_samples=100), out


def test_static_int8_validates_against_the_float_file(int8, tflite_float, val_npz):
    from liteship.validate import validate

    report, out = int8
    # static int8 goes through TFLite's calibrator + MLIR quantizer when TensorFlow is installed (issue 20)
    assert report.source_kind == "tflite" and report.method == "tflite-mlir-quantizer"
    assert report.recipe == "int8" and report.io_type == "float32" and report.calibration_samples == 100
    ops = _op_input_types(out.read_bytes())
    assert "INT8" in ops["CONV_2D"] and "INT8" in ops["FULLY_CONNECTED"]  # integer compute
    assert report.size_bytes < 0.5 * tflite_float.stat().st_size
    v = validate(out, tflite_float, val_npz, raise_on_failure=False)
    assert v.agreement[0].top1 >= 0.95, v.agreement
    info = read_liteship_info(out)
    assert info["recipe"] == "int8" and info["calibration"]["samples"] == 100


def test_weight_only_int4_validates_against_the_float_file(tflite_float, val_npz, tmp_path):
    from liteship.validate import validate

    out = tmp_path / "digits.w4.tflite"
    report = convert(tflite_float, out, quantize="weight-int4")
    assert report.method == "ai-edge-quantizer" and report.calibration_samples == 0
    ops = _op_input_types(out.read_bytes())
    assert "INT4" in ops["DEQUANTIZE"] and "FLOAT32" in ops["CONV_2D"]  # float compute, int4 weights
    v = validate(out, tflite_float, val_npz, raise_on_failure=False)
    assert v.agreement[0].top1 >= 0.9, v.agreement


def test_keep_float_leaves_the_named_op_type_in_float(tflite_float, calib_npy):
    from liteship.convert.tflite_quant import quantize_keeping_float

    calib = [{"image": x[None]} for x in np.load(calib_npy)[:20]]
    from liteship.convert.tflite_quant import signature_inputs

    name = next(iter(signature_inputs(tflite_float.read_bytes())[1]))
    calib = [{name: s["image"]} for s in calib]
    data = quantize_keeping_float(tflite_float, "int8", calibration=calib, keep_float=["FULLY_CONNECTED"])
    ops = _op_input_types(data)
    assert ops["FULLY_CONNECTED"] <= {"FLOAT32"} and "INT8" in ops["CONV_2D"]


def test_metadata_labels_and_normalization_are_carried_into_model_and_package(third_party_models, tmp_path):
    from liteship.model.metadata import labels_from_metadata, normalization_from_metadata, read_metadata
    from liteship.package import build_package, extract_verified, generate_keypair

    src = third_party_models / "mobilenet_v1_0.25_224_1_metadata_1.tflite"
    out = tmp_path / "mobilenet.w8.tflite"
    report = convert(src, out, quantize="weight-int8")
    assert labels_from_metadata(out) == labels_from_metadata(src) and len(labels_from_metadata(out)) == 1001
    assert read_metadata(out)["name"] == read_metadata(src)["name"]
    norm = normalization_from_metadata(src)
    assert norm is not None and report.preprocessing["mean"] == list(norm.mean)
    keys = generate_keypair(tmp_path / "k.key")
    info = build_package(
        out, tmp_path / "pkg", model_id="mobilenet", version="1.0.0", private_key=keys.private_path
    )
    extract_verified(info.path, keys.public_path, tmp_path / "current")
    (shipped,) = (tmp_path / "current").rglob("*.tflite")
    assert labels_from_metadata(shipped) == labels_from_metadata(src)
    assert read_liteship_info(shipped)["preprocessing"]["mean"] == list(norm.mean)

    # ai-edge-quantizer keeps large weights after the flatbuffer; every rewrite since (metadata, liteship's
    # record, the package) kept them there, and the shipped file computes what the quantizer's own output does.
    from liteship.convert.tflite_quant import quantize_keeping_float
    from liteship.runtime import LiteRTRunner

    after = [b for b in load_model(shipped).model.buffers if b.data is None and getattr(b, "offset", 0) > 1]
    assert after, "expected weights stored after the flatbuffer"
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    outputs = []
    for model in (quantize_keeping_float(src.read_bytes(), "weight-int8"), shipped.read_bytes()):
        with LiteRTRunner(model, num_threads=1) as r:
            outputs.append(r.infer({r.input_specs[0].name: x}))
    assert outputs[0].keys() == outputs[1].keys()
    assert all(np.array_equal(outputs[0][k], outputs[1][k]) for k in outputs[0])


def test_already_quantized_models_are_refused(tflite_int8, third_party_models):
    for model in (tflite_int8, third_party_models / "mobilenet_v1_0.25_224_quant.tflite"):
        with pytest.raises(ConversionError, match="already quantized") as e:
            convert(model, None, quantize="weight-int8")
        assert "float32" in str(e.value) and "as it is" in str(e.value)


def test_recipes_and_io_types_it_cannot_do(tflite_float, calib_npy):
    with pytest.raises(UsageError, match="int8-fallback is a TFLite-converter recipe"):
        convert(tflite_float, None, quantize="int8-fallback")
    with pytest.raises(UsageError, match="keeps float32 model inputs and outputs"):
        convert(tflite_float, None, quantize="int8", io_type="int8", calibration=calib_npy)
    with pytest.raises(UsageError, match="needs calibration data"):
        convert(tflite_float, None, quantize="int16x8")


def test_cli_quantizes_a_float_tflite_and_reports_json(cli, tflite_float, tmp_path, tflite_int8):
    src = tmp_path / "zoo.tflite"
    src.write_bytes(tflite_float.read_bytes())
    r = cli("convert", str(src), "-q", "weight-int8", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["recipe"] == "weight-int8" and data["output"].endswith("zoo.weight-int8.tflite")
    r = cli("convert", str(src))  # recipe none must not overwrite the source
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "zoo.liteship.tflite").exists() and src.read_bytes() == tflite_float.read_bytes()
    r = cli("convert", str(tflite_int8), "-q", "int8", "--calibration", "x.npy")
    assert r.returncode == 1 and "already quantized" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_quantizer_extra_is_one_line_naming_the_install(no_tf_python, tflite_float):
    proc = no_tf_python(
        f"""
        import importlib.abc, sys
        class _Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "ai_edge_quantizer":
                    raise ImportError(name)
        sys.meta_path.insert(0, _Block())
        from liteship.convert.tflite_quant import quantize_keeping_float
        from liteship.errors import UsageError
        try:
            quantize_keeping_float({str(tflite_float)!r}, "weight-int8")
        except UsageError as e:
            print("usage:", e)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'liteship[quantizer]'" in proc.stdout


def test_static_int8_of_a_toco_era_mobilenet_loads_and_runs(third_party_models, tmp_path):
    # ai-edge-quantizer 0.10 read this file's legacy op codes as ADD and gave MobileNetV1's first conv
    # int8 weights with a non-zero zero point, which LiteRT refuses (issue 20); the MLIR path reads them
    from liteship.runtime import LiteRTRunner

    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(0, 255, (4, 224, 224, 3)).astype(np.float32))
    out = tmp_path / "int8.tflite"
    rep = convert(
        third_party_models / "mobilenet_v1_0.25_224_1_metadata_1.tflite",
        out,
        quantize="int8",
        calibration=calib,
        calibration_samples=4,
        progress=False,
    )
    assert rep.method == "tflite-mlir-quantizer" and rep.ops["CONV_2D"] == 15
    ops = _op_input_types(out.read_bytes())
    assert "INT8" in ops["CONV_2D"] and "INT8" in ops["DEPTHWISE_CONV_2D"]
    with LiteRTRunner(out) as r:
        (probs,) = r.infer({r.input_specs[0].name: np.zeros((1, 224, 224, 3), np.float32)}).values()
    assert (
        probs.shape == (1, 1001) and float(probs.min()) >= 0 and float(probs.max()) <= 1
    )  # softmax, dequantized


def test_a_legacy_file_is_normalized_so_every_recipe_quantizes_it(third_party_models, tmp_path):
    """Issue 20: MobileNetV1's TOCO file keeps its op codes in deprecated_builtin_code only; on main
    ai-edge-quantizer saw every op as ADD (int8 did not load in LiteRT, weight-int8 quantized nothing)."""
    source = third_party_models / "mobilenet_v1_0.25_224_1_metadata_1.tflite"
    for recipe in ("weight-int8", "dynamic", "float16"):
        rep = convert(source, tmp_path / f"{recipe}.tflite", quantize=recipe, progress=False)
        assert not any("quantized no tensor" in w for w in rep.warnings), recipe
        assert rep.size_bytes < 0.6 * rep.float32_size_bytes, recipe
        assert rep.source_normalization["op_codes_fixed"] == 5
        assert rep.source_normalization["associated_files"] == ["labels.txt"]
        assert any(line.startswith("source normalized: op codes of 5") for line in rep.summary_lines())
    float16 = _op_input_types((tmp_path / "float16.tflite").read_bytes())
    assert "FLOAT16" in float16["DEQUANTIZE"] and float16["CONV_2D"] == {"FLOAT32"}


def test_float16_validates_against_the_float_file(tflite_float, val_npz, tmp_path):
    from liteship.validate import validate

    rep = convert(tflite_float, tmp_path / "f16.tflite", quantize="float16", progress=False)
    assert rep.recipe == "float16" and rep.size_bytes < rep.float32_size_bytes
    assert validate(tmp_path / "f16.tflite", tflite_float, val_npz).agreement[0].top1 >= 0.99


def test_a_recipe_that_quantizes_nothing_says_so(third_party_models, tmp_path):
    rep = convert(
        third_party_models / "mobilenet_v1_0.25_224_1_metadata_1.tflite",
        tmp_path / "w8.tflite",
        quantize="weight-int8",
        keep_float_layers=["CONV_2D", "DEPTHWISE_CONV_2D"],
        progress=False,
    )
    assert any("quantized no tensor" in w for w in rep.warnings)


def test_the_io_line_is_what_the_tensors_are(int8):
    """Issue 22 (11): ai-edge-quantizer's int8 model has int8 input and output tensors while the request
    (and the record) says float32; the summary printed `I/O float32` right above `input … int8[…]`.
    The I/O line now comes from the model's tensors."""
    import dataclasses

    report, _ = int8
    # the MLIR path keeps float32 tensors (issue 20); the line follows whatever the tensors are
    assert [s.dtype for s in (*report.inputs, *report.outputs)] == ["float32"] * 2
    assert "I/O float32," in report.summary_lines()[1]
    ints = tuple(dataclasses.replace(o, dtype="int8") for o in report.inputs)
    outs = tuple(dataclasses.replace(o, dtype="int8") for o in report.outputs)
    lines = dataclasses.replace(report, inputs=ints, outputs=outs).summary_lines()
    assert "I/O int8," in lines[1] and "float32" not in lines[1], lines
    assert all(" int8[" in x for x in lines if x.startswith(("input", "output"))), lines
    floats = tuple(dataclasses.replace(o, dtype="float32") for o in report.outputs)
    report = dataclasses.replace(report, inputs=ints)
    assert "I/O int8 in, float32 out," in dataclasses.replace(report, outputs=floats).summary_lines()[1]


@pytest.mark.parametrize("recipe", ["int8", "dynamic", "float16"])
def test_the_float_size_of_a_tflite_source_is_the_source_itself(recipe, tflite_float, calib_npy, tmp_path):
    """Issue 22 (11): the summary's percentage compared with an estimate rebuilt from the quantized
    weights (44,592 bytes for this 43,320-byte float file at int8); the float model is right there."""
    from liteship.model.flatbuffer import write_liteship_info

    kw = {"calibration": calib_npy, "calibration_samples": 50} if recipe == "int8" else {}
    out = tmp_path / f"{recipe}.tflite"
    rep = convert(tflite_float, out, quantize=recipe, **kw)
    # the float source as liteship writes it, with the same record as the converted model
    want = len(write_liteship_info(tflite_float.read_bytes(), read_liteship_info(out.read_bytes())))
    assert rep.float32_size_bytes == want
    assert rep.ratio_to_float32 == rep.size_bytes / want
    assert f"({rep.size_bytes / want:.0%} of float32 {want / 1024:.1f} KiB)" in "\n".join(rep.summary_lines())
