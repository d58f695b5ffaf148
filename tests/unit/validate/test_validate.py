"""``liteship.validate`` on real tiny models: identical, converted, quantized and damaged candidates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liteship.errors import GateFailed, ValidationError
from liteship.model.flatbuffer import write_liteship_info
from liteship.validate import ValidationReport, validate
from liteship.validate.comparator import match_outputs

GATES = dict(min_agreement=0.99, max_accuracy_drop=1.0, min_sqnr=20.0, atol=0.05)


def by_hand_argmax_tflite(path, x) -> np.ndarray:
    """What a user would write: the raw interpreter, one sample at a time, argmax of the raw output."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = inp["quantization"]
    preds = []
    for sample in x:
        feed = sample[None]
        if inp["dtype"] == np.int8:
            feed = np.clip(np.round(feed / scale + zero), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], feed)
        interp.invoke()
        preds.append(int(np.argmax(interp.get_tensor(out["index"])[0])))
    return np.array(preds)


def test_a_model_against_itself_is_identical_and_passes(tflite_int8, val_npz):
    r = validate(tflite_int8, tflite_int8, val_npz, progress=False, **GATES)
    assert isinstance(r, ValidationReport) and r.passed and r.samples == 200 and r.has_labels
    (o,) = r.outputs
    assert o.identical and o.max_abs_error == 0.0 and o.sqnr_db == float("inf")
    (a,) = r.agreement
    assert a.top1 == 1.0 and a.top5 == 1.0 and a.accuracy_drop == 0.0
    assert {g.name for g in r.gates} == {"min_agreement", "max_accuracy_drop", "min_sqnr", "allclose"}
    assert all(g.passed for g in r.gates) and r.failures == []


def test_float_tflite_matches_keras_almost_exactly(tflite_float, keras_model, val_npz):
    r = validate(tflite_float, keras_model, val_npz, progress=False, atol=1e-5)
    (o,) = r.outputs
    assert o.reference_name == "probs" and o.name != "probs"  # TFLite renamed it: matched by order
    assert any("matched by order" in n for n in r.notes)
    assert o.max_abs_error < 1e-5 and o.sqnr_db > 80 and o.cosine_similarity > 0.999999
    assert r.agreement[0].top1 == 1.0 and r.passed


def test_top1_agreement_equals_the_one_computed_by_hand(tflite_int8, keras_model, digits, val_npz):
    x, y = digits[2][:200], digits[3][:200]
    keras_pred = np.argmax(keras_model.predict(x, verbose=0), axis=1)
    lite_pred = by_hand_argmax_tflite(tflite_int8, x)
    r = validate(tflite_int8, keras_model, val_npz, progress=False)
    (a,) = r.agreement
    assert a.top1 == np.mean(keras_pred == lite_pred)  # exactly, not approximately
    assert a.candidate_accuracy == np.mean(lite_pred == y)
    assert a.reference_accuracy == np.mean(keras_pred == y)
    assert a.accuracy_drop == pytest.approx(100 * (a.reference_accuracy - a.candidate_accuracy))
    assert 0.0 < r.outputs[0].max_abs_error < 0.2  # int8 is close but not identical


def test_hand_agreement_also_holds_when_models_disagree(tflite_damaged, keras_model, digits, val_npz):
    x = digits[2][:120]
    keras_pred = np.argmax(keras_model.predict(x, verbose=0), axis=1)
    lite_pred = by_hand_argmax_tflite(tflite_damaged, x)
    r = validate(tflite_damaged, keras_model, val_npz, limit=120, progress=False)
    assert r.samples == 120
    assert r.agreement[0].top1 == np.mean(keras_pred == lite_pred) < 0.5


def test_a_damaged_candidate_fails_every_gate_and_names_the_output(tflite_damaged, keras_path, val_npz):
    r = validate(tflite_damaged, keras_path, val_npz, progress=False, **GATES)
    assert not r.passed
    failing = {g.name for g in r.gates if not g.passed}
    assert failing == {"min_agreement", "max_accuracy_drop", "min_sqnr", "allclose"}
    name = r.outputs[0].name
    assert all(f.startswith(f"output {name!r}:") for f in r.failures)
    with pytest.raises(GateFailed) as info:
        validate(tflite_damaged, keras_path, val_npz, progress=False, raise_on_failure=True, **GATES)
    e = info.value
    assert e.exit_code == 3 and len(e.failures) == 4 and e.report.passed is False
    assert "min_agreement 0.99" in str(e) and "top-1 agreement" in str(e) and name in str(e)


def test_the_confidence_histogram_is_ready_for_packaging(tflite_int8, keras_model, val_npz):
    from liteship.package.manifest import histogram_dict

    r = validate(tflite_int8, keras_model, val_npz, progress=False)
    h = r.confidence_histogram
    assert h is not None and len(h.counts) == 20 and sum(h.counts) == 200 and not h.softmax_applied
    assert sum(h.counts[10:]) > 2 * sum(h.counts[:10])  # a trained classifier is mostly confident
    d = histogram_dict(r.to_dict()["confidence_histogram"])
    assert d["counts"] == list(h.counts) and len(d["bins"]) == 21
    json.dumps(r.to_dict())  # JSON-ready, inf included


def test_preprocessing_comes_from_the_candidates_record(tflite_float, keras_model, digits, tmp_path):
    raw = tmp_path / "pixels.npz"
    np.savez(raw, x=digits[2][:64] * 16.0, y=digits[3][:64])  # 0..16, the model wants 0..1
    tagged = tmp_path / "tagged.tflite"
    info = {"preprocessing": {"mean": [0.0], "std": [16.0]}}
    tagged.write_bytes(write_liteship_info(tflite_float.read_bytes(), info))
    # the reference sees the same normalized data, so the models agree only if both are fed (x - 0) / 16
    r = validate(tagged, keras_model, raw, progress=False)
    assert r.preprocessing_from == "candidate metadata" and r.preprocessing["std"] == [16.0]
    assert r.outputs[0].max_abs_error < 1e-5
    r2 = validate(tagged, keras_model, raw, preprocessing={"std": 1.0}, progress=False)
    assert r2.preprocessing_from == "argument"
    assert r2.agreement[0].reference_accuracy < r.agreement[0].reference_accuracy


def test_accuracy_gate_without_labels_says_what_to_give(tflite_int8, calib_npy):
    with pytest.raises(ValidationError, match="needs labels.*sub-folder per class"):
        validate(tflite_int8, tflite_int8, calib_npy, max_accuracy_drop=1.0, progress=False)
    r = validate(tflite_int8, tflite_int8, calib_npy, limit=10, min_agreement=1.0, progress=False)
    assert r.passed and r.agreement[0].candidate_accuracy is None and not r.has_labels


def test_layerwise_ranks_the_int8_models_layers(tflite_int8, keras_model, val_npz):
    r = validate(tflite_int8, keras_model, val_npz, limit=60, layerwise=True, progress=False)
    layers = r.layerwise
    assert len(layers) >= 4
    keys = [s.rmse_over_scale for s in layers]
    assert keys == sorted(keys, reverse=True) and keys[0] > 0.1
    ops = {s.op_name for s in layers}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
    assert any("conv1" in s.name for s in layers) and any("fc1" in s.name for s in layers)
    assert all(s.scale > 0 and s.range == pytest.approx(255 * s.scale) for s in layers)
    assert r.to_dict()["layerwise"][0]["name"] == layers[0].name


def test_layerwise_refuses_a_float_candidate(tflite_float, keras_model, val_npz):
    with pytest.raises(ValidationError, match="integer-quantized candidate; this one is float32"):
        validate(tflite_float, keras_model, val_npz, limit=5, layerwise=True, progress=False)


def test_layerwise_needs_a_tensorflow_source(tflite_int8, val_npz):
    with pytest.raises(ValidationError, match="TensorFlow source"):
        validate(tflite_int8, tflite_int8, val_npz, limit=5, layerwise=True, progress=False)


def test_output_matching_rule():
    a, b = np.zeros((2, 3)), np.zeros((2, 4))
    notes: list[str] = []
    assert match_outputs({"x": a, "y": b}, {"y": b, "x": a}, notes) == [("x", "x"), ("y", "y")] and not notes
    assert match_outputs({"t:0": a, "t:1": b}, {"p": a, "q": b}, notes) == [("t:0", "p"), ("t:1", "q")]
    assert notes and "matched by order" in notes[0]
    with pytest.raises(ValidationError, match="shape"):
        match_outputs({"t:0": b, "t:1": a}, {"p": a, "q": b}, [])
    with pytest.raises(ValidationError, match="cannot match outputs"):
        match_outputs({"t:0": a}, {"p": a, "q": b}, [])


def test_layerwise_source_that_is_not_a_model_is_explained(tflite_int8, val_npz, tmp_path):
    bogus = tmp_path / "not_a_model.keras"
    bogus.write_bytes(b"nope")
    with pytest.raises(ValidationError, match="cannot re-convert the layerwise source"):
        validate(
            tflite_int8, tflite_int8, val_npz, limit=5, layerwise=True, layerwise_source=bogus, progress=False
        )
