"""The accuracy fixes on the float .tflite graph (any source): real models, real converter, real LiteRT.

* the MobileNet pattern (conv → BN → ReLU → depthwise → ReLU → conv) with outlier channels, the issue's
  case: plain int8 loses far more than a point, graph equalization through the depthwise conv brings it
  within 0.5 points of float with no op in float;
* learned rounding: never worse than to-nearest, on TFLite's own grid (the MLIR quantizer stores exactly
  the learned integers);
* Google's float MobileNetV1 (a TOCO-era file, ReLU6): equalization keeps its float outputs on real
  photos, and equalization + bias correction raise int8's top-1 agreement with float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liteship.quantize.adaround import learn_rounding, output_error
from liteship.quantize.graph_repair import GraphFixes, max_output_diff, repair_graph
from liteship.quantize.tflite_graph import FloatGraph, quantize_weight

PHOTOS = Path(__file__).resolve().parents[2] / "data" / "third_party" / "photos"


def _accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    hits = 0
    for xs, ys in zip(x, y, strict=True):
        interp.set_tensor(i["index"], xs[None].astype(np.float32))
        interp.invoke()
        hits += int(interp.get_tensor(o["index"])[0].argmax() == ys)
    return hits / len(y)


def _float_compute_ops(model: bytes) -> list[str]:
    """The CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED ops whose activation input is not int8."""
    from liteship.model.flatbuffer import load_model, op_name, schema

    m = load_model(model).model
    sg = m.subgraphs[0]
    return [
        op_name(m, op.opcodeIndex)
        for op in sg.operators
        if op_name(m, op.opcodeIndex) in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        and sg.tensors[op.inputs[0]].type != schema.TensorType.INT8
    ]


@pytest.fixture(scope="module")
def depthwise_outliers(depthwise_outlier_tflite) -> Path:
    return depthwise_outlier_tflite


def test_graph_equalization_repairs_the_depthwise_pattern_with_no_float_op(
    depthwise_outliers, digits, tmp_path
):
    from liteship.convert import convert

    x_cal, x_test, y_test = digits[0][:200], digits[2], digits[3]
    calib = tmp_path / "calib.npy"
    np.save(calib, x_cal)
    float_acc = _accuracy(depthwise_outliers.read_bytes(), x_test, y_test)
    plain = convert(str(depthwise_outliers), quantize="int8", calibration=str(calib), progress=False)
    fixed = convert(
        str(depthwise_outliers), quantize="int8", calibration=str(calib), equalize=True, progress=False
    )
    plain_acc = _accuracy(plain.model_bytes, x_test, y_test)
    fixed_acc = _accuracy(fixed.model_bytes, x_test, y_test)
    print(f"float {float_acc:.3f}  int8 {plain_acc:.3f}  int8+equalize {fixed_acc:.3f}")
    assert float_acc > 0.8
    assert plain_acc < float_acc - 0.05  # the outliers really hurt int8 …
    assert fixed_acc >= float_acc - 0.005  # … and equalization through the depthwise conv repairs it
    eq = fixed.graph_fixes["equalize"]
    assert any(p["into_depthwise"] for p in eq["pairs"]) and eq["max_output_diff"] < 1e-4
    assert _float_compute_ops(fixed.model_bytes) == []  # no conv/depthwise/fully connected op in float


def test_learned_rounding_is_on_tflites_grid_and_never_worse_than_nearest():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(12, 20)).astype(np.float32)
    mix = rng.normal(size=(20, 20))
    x = rng.normal(size=(2000, 20)) @ mix + 0.5  # correlated inputs with a mean: nearest is not optimal
    h = x.T @ x / len(x)
    learned = learn_rounding(w, h, iterations=300)
    q, scale = quantize_weight(w)
    ints = learned / scale
    np.testing.assert_allclose(ints, np.round(ints), atol=1e-3)  # on the grid …
    np.testing.assert_allclose(np.abs(ints).max(axis=1), 127, atol=1e-3)  # … whose scale did not move
    before = output_error(q * scale - w, h, False)
    after = output_error(learned.astype(np.float64) - w, h, False)
    assert after < 0.8 * before
    assert (np.abs(ints - q) <= 1 + 1e-3).all()  # only ever the other neighbour


def test_the_mlir_quantizer_stores_exactly_the_learned_integers(depthwise_outliers, digits):
    from liteship.model.flatbuffer import load_model
    from liteship.quantize.denylist import quantize_calibrated
    from liteship.quantize.graph_repair import calibrate_float_model

    samples = [[s[None]] for s in digits[0][:32]]
    repaired, report = repair_graph(depthwise_outliers.read_bytes(), samples, GraphFixes(adaround=True))
    assert report.adaround is not None and report.adaround.ops and report.adaround.median_ratio <= 1.0
    graph = FloatGraph(repaired)
    expected = {}
    for op in graph.ops:
        q, scale = quantize_weight(graph.weight(op))
        np.testing.assert_allclose(graph.weight(op) / scale, q, atol=1e-3)
        expected[graph.shape(op.weight)] = q
    quantized = load_model(quantize_calibrated(calibrate_float_model(repaired, samples)))
    sg = quantized.model.subgraphs[0]
    found = 0
    for t in sg.tensors:
        if t.type == 9 and tuple(t.shape) in expected:  # INT8 weights
            raw = np.frombuffer(bytes(quantized.model.buffers[t.buffer].data), np.int8).reshape(
                tuple(t.shape)
            )
            want = expected[tuple(t.shape)]
            got = raw.reshape(-1, raw.shape[-1]).T if raw.shape[0] == 1 else raw.reshape(raw.shape[0], -1)
            np.testing.assert_array_equal(got, want.astype(np.int8))
            found += 1
    assert found >= 3


def _photos(size: int = 224) -> np.ndarray:
    from PIL import Image

    files = sorted(PHOTOS.rglob("*.jpg"))
    if not files:
        pytest.skip(f"no photos in {PHOTOS}")
    out = [np.asarray(Image.open(f).convert("RGB").resize((size, size)), dtype=np.float32) for f in files]
    return np.stack(out)


def _outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    out = []
    for xs in x:
        interp.set_tensor(i["index"], xs[None])
        interp.invoke()
        out.append(interp.get_tensor(o["index"])[0].copy())
    return np.stack(out)


def test_equalization_keeps_mobilenets_float_outputs_and_bias_correction_raises_agreement(
    third_party_models, tmp_path
):
    from liteship.convert import convert

    src = third_party_models / "mobilenet_v1_0.25_224_1_metadata_1.tflite"
    pixels = _photos()
    photos = (pixels - 127.5) / 127.5  # the model's own normalization (its TFLite metadata)
    samples = [[p[None]] for p in photos]
    data = src.read_bytes()
    equalized, report = repair_graph(data, samples, GraphFixes(equalize=True))
    eq = report.equalize
    assert eq is not None and len(eq.pairs) >= 20 and any(p.into_depthwise for p in eq.pairs)
    assert sum(p.held_by_clip for p in eq.pairs) > 0  # ReLU6 channels that reach 6 keep their scale
    assert max_output_diff(data, equalized, samples) < 1e-4
    calib = tmp_path / "photos.npy"
    np.save(calib, pixels)  # raw pixels: convert applies the metadata's normalization
    unseen = photos[:, :, ::-1]  # judged on the mirrored photos, which it did not calibrate on
    ref = _outputs(data, unseen)
    figures = {}
    for name, kw in (("plain", {}), ("eq+bc", {"equalize": True, "bias_correction": True})):
        rep = convert(str(src), quantize="int8", calibration=str(calib), progress=False, **kw)
        assert rep.method == "tflite-mlir-quantizer"
        figures[name] = float((_outputs(rep.model_bytes, unseen).argmax(1) == ref.argmax(1)).mean())
    print("top-1 agreement with float on mirrored photos:", figures)
    assert figures["eq+bc"] > figures["plain"] + 0.05


def test_high_bias_absorption_on_the_graph_narrows_the_int8_range_and_keeps_float(
    high_bias_model, digits, activation_scale, tmp_path
):
    import tensorflow as tf

    from liteship.convert import convert

    source = tmp_path / "high_bias.tflite"
    source.write_bytes(bytes(tf.lite.TFLiteConverter.from_keras_model(high_bias_model).convert()))
    calib = tmp_path / "calib.npy"
    np.save(calib, digits[0][:200])
    plain = convert(str(source), quantize="int8", calibration=str(calib), progress=False)
    fixed = convert(
        str(source), quantize="int8", calibration=str(calib), absorb_high_bias=True, progress=False
    )
    hb = fixed.graph_fixes["absorb_high_bias"]
    assert len(hb["pairs"]) == 1 and hb["pairs"][0]["channels"] >= 4 and hb["max_output_diff"] < 1e-4
    before, after = activation_scale(plain.model_bytes, "c1"), activation_scale(fixed.model_bytes, "c1")
    print(f"c1's int8 scale {before:.4f} → {after:.4f}")
    assert after < 0.5 * before
