"""inspect_model on real models (third-party and TensorFlow-converted) and on broken files."""

from __future__ import annotations

import io
import json
import random
import zipfile

import numpy as np
import pytest

from liteship.errors import ModelError
from liteship.model import flatbuffer as fb
from liteship.model.inspect import InspectReport, inspect_model

QUANT = "mobilenet_v1_0.25_224_quant.tflite"
FLOAT = "mobilenet_v1_0.25_224_1_metadata_1.tflite"
FLEX = "whitespace_tokenizer_flex_delegate.tflite"


@pytest.fixture(scope="module")
def quant(third_party_models) -> InspectReport:
    return inspect_model(third_party_models / QUANT)


def test_uint8_mobilenet_io_metadata_and_files(quant):
    (inp,), (out,) = quant.inputs, quant.outputs
    assert (inp.name, inp.shape, inp.dtype) == ("input", (1, 224, 224, 3), "uint8")
    assert (inp.scale, inp.zero_point) == (0.0078125, 128)
    assert out.shape == (1, 1001) and out.scale == 0.00390625
    assert quant.quantization.io == {"input": "per-tensor", out.name: "per-tensor"}
    assert quant.kind == "full-int8"
    assert [(m.name, m.label) for m in quant.metadata] == [("TFLITE_METADATA", "TFLite Metadata")]
    assert quant.associated_files.keys() == {"labels.txt"} and quant.associated_files["labels.txt"] > 1000
    assert quant.min_runtime_version is None  # TOCO did not record one


def test_uint8_mobilenet_ops_weights_and_counts(quant, third_party_models):
    assert quant.builtin_ops == {
        "CONV_2D": 15,
        "DEPTHWISE_CONV_2D": 13,
        "AVERAGE_POOL_2D": 1,
        "RESHAPE": 1,
        "SOFTMAX": 1,
    }
    assert quant.custom_ops == {} and quant.flex_ops == {} and not quant.needs_flex
    assert quant.file_bytes == (third_party_models / QUANT).stat().st_size
    assert quant.subgraphs[0].operators == 31 and quant.tensor_count == quant.subgraphs[0].tensors
    # MobileNet v1 0.25: ~0.47 M parameters; uint8 weights dominate, int32 biases
    assert 460_000 < quant.parameter_count < 480_000
    assert quant.weight_bytes["uint8"] > 20 * quant.weight_bytes["int32"]
    assert quant.quantization.per_channel == 0 and quant.quantization.weight_dtypes["uint8"] == 28


def test_float_mobilenet(third_party_models):
    r = inspect_model(third_party_models / FLOAT)
    assert r.kind == "float32" and r.inputs[0].dtype == "float32" and r.inputs[0].scale is None
    assert r.quantization.per_tensor == 0 and r.quantization.weight_dtypes == {}
    assert set(r.weight_bytes) == {"float32"}
    assert r.weight_bytes["float32"] == 4 * r.parameter_count
    assert r.target("edgetpu").verdict == "blocked"
    assert r.target("cpu").verdict == "ok"


def test_flex_model_is_detected_and_blocked_everywhere(third_party_models):
    r = inspect_model(third_party_models / FLEX)
    assert "FlexWhitespaceTokenizeWithOffsets" in r.flex_ops and r.needs_flex
    assert r.custom_ops == {} and "STRIDED_SLICE" in r.builtin_ops
    assert r.min_runtime_version == "1.14.0"
    assert [m.name for m in r.metadata] == ["min_runtime_version"]
    assert r.inputs[0].dtype == "string" and r.outputs[0].shape == (-1,)
    assert len(r.targets) == 5
    for v in r.targets:
        assert v.verdict == "blocked", v.target
        assert set(r.flex_ops) <= set(v.blocking_ops)


def test_float_conversion(tflite_float):
    r = inspect_model(tflite_float)
    assert r.kind == "float32"
    assert r.inputs[0].shape[1:] == (8, 8, 1) and r.inputs[0].dtype == "float32"
    assert r.outputs[0].shape[-1] == 10
    assert [s.key for s in r.signatures] == ["serving_default"]
    sig = r.signatures[0]
    assert set(sig.inputs.values()) == {r.inputs[0].name} and len(sig.outputs) == 1
    assert "CONV_2D" in r.builtin_ops and "FULLY_CONNECTED" in r.builtin_ops
    # conv1 3*3*1*8+8, conv2 3*3*8*16+16, fc1 (4*4*16)*32+32, probs 32*10+10, plus shape constants
    weights = 80 + 1168 + 8224 + 330
    assert weights <= r.parameter_count < weights + 16
    assert "CONVERSION_METADATA" in {m.name for m in r.metadata}
    assert r.target("cpu").verdict == "ok" and r.target("micro").verdict == "ok"
    # the dynamic-batch Flatten computes its shape at run time with int32 SHAPE/PACK ops
    assert r.target("gpu").verdict == "partial" and "SHAPE" in r.target("gpu").fallback_ops


def test_int8_conversion_is_full_int8_with_per_channel_conv_weights(tflite_int8):
    r = inspect_model(tflite_int8)
    assert r.kind == "full-int8"
    assert r.inputs[0].dtype == "int8" and r.inputs[0].scale and r.inputs[0].zero_point is not None
    q = r.quantization
    assert q.per_channel >= 2  # both conv kernels carry one scale per output channel
    assert any("conv1" in n for n in q.per_channel_tensors) and any(
        "conv2" in n for n in q.per_channel_tensors
    )
    assert q.weight_dtypes["int8"] >= 4
    assert r.weight_bytes["int8"] > r.weight_bytes.get("float32", 0)
    # Keras exports leave the batch open (-1): the Edge TPU compiler refuses that, TFLM does not mind
    assert r.inputs[0].shape[0] == -1
    edgetpu = r.target("edgetpu")
    assert edgetpu.verdict == "blocked" and "batch_size=1" in edgetpu.reasons[0]
    assert r.target("micro").verdict == "ok"


@pytest.fixture(scope="module")
def converted_kinds(saved_model_dir, digits):
    """Dynamic-range and float16 conversions of the digits CNN (TensorFlow's converter, ~1 s each)."""
    import tensorflow as tf

    out = {}
    for kind in ("dynamic-range", "float16"):
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if kind == "float16":
            conv.target_spec.supported_types = [tf.float16]
        out[kind] = conv.convert()
    return out


def test_dynamic_range_and_float16_kinds(converted_kinds):
    dyn = inspect_model(converted_kinds["dynamic-range"])
    assert dyn.kind == "dynamic-range" and dyn.inputs[0].dtype == "float32"
    assert dyn.quantization.weight_dtypes.get("int8", 0) >= 1
    assert dyn.target("micro").verdict == "blocked" and dyn.target("edgetpu").verdict == "blocked"
    f16 = inspect_model(converted_kinds["float16"])
    assert f16.kind == "float16" and f16.quantization.weight_dtypes.get("float16", 0) >= 4
    assert "DEQUANTIZE" in f16.builtin_ops
    gpu = f16.target("gpu")  # the delegate folds DEQUANTIZE of float16 weights; micro has no float16
    assert "DEQUANTIZE" not in gpu.fallback_ops and "CONV_2D" not in gpu.fallback_ops
    assert f16.target("micro").verdict == "blocked"


def test_report_is_json_ready_and_targets_can_be_chosen(third_party_models):
    r = inspect_model(third_party_models / QUANT, targets=["gpu", "edgetpu"])
    assert [v.target for v in r.targets] == ["gpu", "edgetpu"]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["inputs"][0]["zero_point"] == 128 and d["associated_files"] == {"labels.txt": 10484}
    assert d["targets"][1]["verdict"] == "ok"


# --- bad input ------------------------------------------------------------------------------------------


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(64)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.tflite", b"x" * 100)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "0 bytes long"),
        (b"TFL3", "at least 8 bytes"),
        (_png(), "not a TFLite model"),
        (_zip(), "zip archive"),
        (b"\x00\x00\x00\x00TFL3" + bytes(8), "corrupted"),
    ],
)
def test_non_models_raise_model_error(data, match):
    with pytest.raises(ModelError, match=match):
        inspect_model(data)


def test_keras_file_is_named_as_such_not_as_a_package(tmp_path):
    def keras_zip(path):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("metadata.json", "{}")
            zf.writestr("config.json", "{}")
            zf.writestr("model.weights.h5", b"")
        return path

    for path in (keras_zip(tmp_path / "digits.keras"), keras_zip(tmp_path / "renamed.zip")):
        with pytest.raises(ModelError, match="is a Keras model") as e:
            inspect_model(path)
        assert "liteship convert" in str(e.value) and "verify" not in str(e.value)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        inspect_model(tmp_path / "nope.tflite")
    with pytest.raises(ModelError, match="is a directory"):
        inspect_model(tmp_path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_models_raise_model_error(third_party_models, keep):
    data = (third_party_models / FLEX).read_bytes()
    with pytest.raises(ModelError, match="truncated|corrupted"):
        inspect_model(data[: int(len(data) * keep)])


def test_bit_flips_give_a_report_or_a_model_error_never_anything_else(third_party_models):
    """Flip random bits in the flatbuffer's structure (the first KB and the tables at the end)."""
    data = bytearray((third_party_models / FLEX).read_bytes())
    rng = random.Random(0)
    outcomes = {"report": 0, "error": 0}
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(bad))
            bad[pos] ^= 1 << rng.randrange(8)
        try:
            inspect_model(bytes(bad))
            outcomes["report"] += 1
        except ModelError as e:
            assert "Traceback" not in str(e) and "\n" not in e.message
            outcomes["error"] += 1
    assert outcomes["error"] > 10, outcomes  # the check must actually catch corruption


def test_signature_pointing_outside_the_model_is_rejected(tflite_float):
    loaded = fb.load_model(tflite_float)
    loaded.model.signatureDefs[0].subgraphIndex = 7
    with pytest.raises(ModelError, match="signature refers to subgraph 7"):
        inspect_model(fb.pack_model(loaded.model))
    loaded = fb.load_model(tflite_float)
    loaded.model.signatureDefs[0].inputs[0].tensorIndex = 10_000
    with pytest.raises(ModelError, match="signature refers to tensor 10000"):
        inspect_model(fb.pack_model(loaded.model))


def test_unreadable_associated_files_are_a_warning(third_party_models):
    data = bytearray((third_party_models / QUANT).read_bytes())
    member = data.rfind(b"PK\x01\x02")  # central directory entry of labels.txt
    data[member + 10 : member + 12] = (99).to_bytes(2, "little")  # an unknown compression method
    r = inspect_model(bytes(data))
    assert r.associated_files == {} and r.warnings and "zipped" in r.warnings[0]
    assert r.kind == "full-int8"


def test_inspect_works_without_tensorflow(no_tf_python, third_party_models):
    result = no_tf_python(f"""
        import sys
        import liteship
        from liteship.model import inspect_model, InspectReport
        r = liteship.inspect_model({str(third_party_models / QUANT)!r}, targets=["edgetpu"])
        assert isinstance(r, InspectReport)
        print(r.kind, r.inputs[0].zero_point, r.targets[0].verdict, sorted(r.associated_files))
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["full-int8", "128", "ok", "['labels.txt']"]


def test_numpy_vectors_in_model_are_handled(third_party_models):
    # the schema bindings hand back numpy arrays for int vectors; the report holds plain Python ints
    r = inspect_model(third_party_models / QUANT)
    assert all(type(d) is int for d in r.inputs[0].shape)
    assert not any(isinstance(v, np.generic) for v in r.weight_bytes.values())
