"""Legacy .tflite files from the wild, normalized on load (issue 20): real files, real LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.model import flatbuffer as fbm
from liteship.model import metadata as M
from liteship.model.normalize import SIGNATURE_KEY, normalize_model

FLOAT_MODELS = (
    "mobilenet_v1_0.25_224_1_metadata_1.tflite",
    "blazeface_face_detection_front_128_float.tflite",
    "hand_landmark_224_float.tflite",
    "pose_detection_128_float.tflite",
)


def _outputs(data: bytes) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    spec = interp.get_input_details()[0]
    x = np.random.default_rng(0).uniform(0, 255, spec["shape"]).astype(spec["dtype"])
    interp.set_tensor(spec["index"], x)
    interp.invoke()
    return [interp.get_tensor(o["index"]).copy() for o in interp.get_output_details()]


@pytest.mark.parametrize("name", [*FLOAT_MODELS, "mobilenet_v1_0.25_224_quant.tflite"])
def test_legacy_files_are_normalized_without_changing_outputs(third_party_models, name):
    data = (third_party_models / name).read_bytes()
    assert all(int(c.builtinCode) == 0 for c in fbm.load_model(data).model.operatorCodes)  # legacy
    out, record = normalize_model(data)
    model = fbm.load_model(out).model
    not_add = [c for c in model.operatorCodes if fbm.builtin_code(c) != fbm.schema.BuiltinOperator.ADD]
    assert record.op_codes_fixed == len(not_add) > 0  # ADD is code 0 in both fields: nothing to move
    assert all(int(c.builtinCode) == fbm.builtin_code(c) for c in model.operatorCodes)
    assert (
        record.signature_added == SIGNATURE_KEY
        and model.signatureDefs[0].signatureKey == SIGNATURE_KEY.encode()
    )
    assert record.schema_version == 3 and record.subgraphs == 1
    assert fbm.associated_files(out) == fbm.associated_files(data)  # the zipped labels.txt is kept
    assert all(np.array_equal(a, b) for a, b in zip(_outputs(data), _outputs(out), strict=True))
    again, second = normalize_model(out)
    assert again == out and not second.changed and second.describe() == []


def test_the_record_says_what_changed(third_party_models):
    _, record = normalize_model(third_party_models / FLOAT_MODELS[0])
    text = record.summary()
    assert "deprecated_builtin_code" in text and "'serving_default' added" in text and "labels.txt" in text
    assert record.producer == "TOCO Converted."
    assert record.to_dict()["associated_files"] == ["labels.txt"]


def test_the_flex_model_is_normalized_too(third_party_models):
    out, record = normalize_model(third_party_models / "whitespace_tokenizer_flex_delegate.tflite")
    assert record.op_codes_fixed > 0
    model = fbm.load_model(out).model
    names = {fbm.op_name(model, i) for i in range(len(model.operatorCodes))}
    assert any(n.startswith("Flex") for n in names) and record.signature_added


def test_metadata_rewrite_of_a_model_with_offset_buffers_and_a_zip(third_party_models):
    """ai-edge-quantizer stores weights (and its metadata) after the flatbuffer; the labels zip follows.
    On main, rewriting its metadata without labels failed: 'a weight buffer lies outside the file'."""
    pytest.importorskip("ai_edge_quantizer")
    from liteship.convert.tflite_quant import _carry_metadata, quantize_keeping_float

    source = (third_party_models / FLOAT_MODELS[0]).read_bytes()
    quantized = _carry_metadata(source, quantize_keeping_float(source, "dynamic"))
    assert any(getattr(b, "offset", 0) > 1 for b in fbm.load_model(quantized).model.buffers)
    data = M.write_metadata(quantized, name="MobileNet", version="1.0.0")
    assert M.read_metadata(data)["name"] == "MobileNet"
    assert M.associated_files(data) == M.associated_files(source)
    assert M.labels_from_metadata(data) == M.labels_from_metadata(source)
    assert M.normalization_from_metadata(data) == M.normalization_from_metadata(source)
    assert all(np.array_equal(a, b) for a, b in zip(_outputs(quantized), _outputs(data), strict=True))


def test_inspect_says_what_loading_will_normalize(third_party_models, tflite_float):
    from liteship.model import inspect_model

    legacy = inspect_model(third_party_models / FLOAT_MODELS[0]).legacy
    assert (
        len(legacy) == 2 and "only in deprecated_builtin_code" in legacy[0] and "added on load" in legacy[1]
    )
    assert inspect_model(tflite_float).legacy == ()  # a file TFLite's current converter wrote
    assert normalize_model(tflite_float)[0] == tflite_float.read_bytes()  # nothing to do: byte for byte
