"""The float-layer search on the outlier-channel CNN with the real TFLite quantizer and LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.quantize import Budget, Measurement, search_float_layers
from liteship.quantize.backends import DenylistBackend

MAX_DROP = 1.0  # points


@pytest.fixture(scope="module")
def backend(outlier_path, calib_npy):
    return DenylistBackend(str(outlier_path), quantize="int8", calibration=calib_npy)


@pytest.fixture(scope="module")
def evaluate(outlier_model, digits):
    from ai_edge_litert.interpreter import Interpreter

    x, y = digits[2], digits[3]
    float_acc = float((outlier_model.predict(x, verbose=0).argmax(1) == y).mean())

    def accuracy(model: bytes) -> float:
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        preds = []
        for s in x:
            v = s[None]
            if i["dtype"] != np.float32:
                scale, zp = i["quantization"]
                v = np.clip(np.round(v / scale + zp), -128, 127).astype(i["dtype"])
            it.set_tensor(i["index"], v)
            it.invoke()
            preds.append(int(it.get_tensor(o["index"]).argmax()))
        return float((np.array(preds) == y).mean())

    def run(model: bytes, keep: tuple[str, ...]) -> Measurement:
        acc = accuracy(model)
        drop = 100 * (float_acc - acc)
        return Measurement(
            passed=drop <= MAX_DROP, score=-drop, metric="accuracy_drop", accuracy=acc, accuracy_drop=drop
        )

    return run


def _conv(backend, name):
    return next(o.name for o in backend.ops() if f"/{name}_" in o.name or f"/{name}/" in o.name)


def test_search_finds_the_minimal_float_set_and_proves_it(backend, evaluate):
    rounds = []
    result = search_float_layers(backend, evaluate, progress=rounds.append)
    c1, c2 = _conv(backend, "c1"), _conv(backend, "c2")
    assert not result.rounds[0].measurement.passed  # plain int8 fails
    assert set(result.float_layers) == {c1, c2} and result.passed and result.minimal
    assert not result.exhausted and "minimal" in result.label
    by_set = {frozenset(r.float_layers): r.measurement for r in result.rounds}
    for name in result.float_layers:  # the proof: each removal was measured and fails
        assert not by_set[frozenset(set(result.float_layers) - {name})].passed
    assert rounds == list(result.rounds)  # progress saw every round
    phases = {r.phase for r in result.rounds}
    assert {"base", "sensitivity", "quantize-only", "add"} <= phases


def test_pruning_returns_an_unneeded_float_layer_to_int8(backend, evaluate):
    c1, c2, fc1 = _conv(backend, "c1"), _conv(backend, "c2"), _conv(backend, "fc1")
    result = search_float_layers(backend, evaluate, start=[c1, c2, fc1])
    assert set(result.float_layers) == {c1, c2} and result.minimal
    prune = [r for r in result.rounds if r.phase == "prune"]
    assert prune[0].layer == fc1 and prune[0].measurement.passed


def test_a_budget_that_runs_out_yields_the_best_round_so_far(backend, evaluate):
    result = search_float_layers(backend, evaluate, budget=Budget(rounds=3, seconds=600))
    assert result.exhausted and not result.minimal and len(result.rounds) == 3
    assert "budget exhausted" in result.label and "best round so far" in result.label
    best = max(result.rounds, key=lambda r: r.measurement.score)
    assert result.float_layers == best.float_layers and result.best_round == best.index


def test_int8_io_with_float_layers_runs_in_litert_and_liteship_run(backend, tmp_path, digits, cli):
    import json

    from liteship.model import inspect_model
    from liteship.runtime import LiteRTRunner

    model = backend.build([_conv(backend, "c1")])  # the first op float: the input must be dequantized
    path = tmp_path / "mixed_int8_io.tflite"
    path.write_bytes(model)
    info = inspect_model(path)
    assert [s.dtype for s in info.inputs] == ["int8"] and [s.dtype for s in info.outputs] == ["int8"]
    x = digits[2][:4]
    with LiteRTRunner(path) as r:
        y = next(iter(r.infer(x).values()))
    assert y.shape == (4, 10) and np.isfinite(y).all()
    assert (y.argmax(1) == digits[3][:4]).mean() >= 0.5  # it computes something, not noise
    np.save(tmp_path / "x.npy", x)
    res = cli(
        "run", str(path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"), "--json"
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["input_shape"] == [4, 8, 8, 1]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y)


def test_every_candidate_op_really_goes_float_including_the_output_op(outlier_path, calib_npy):
    # with float32 I/O the quantizer renames the tensor of an op that produces a model output (the
    # DEQUANTIZE it appends takes the name), so candidates named after the quantized model kept the
    # softmax in int8 silently
    from liteship.model.flatbuffer import load_model, op_name

    backend = DenylistBackend(str(outlier_path), quantize="int8", io_type="float32", calibration=calib_npy)

    def float_ops(model: bytes) -> list[str]:
        loaded = load_model(model)
        sg = loaded.model.subgraphs[0]
        return [
            op_name(loaded.model, op.opcodeIndex)
            for op in sg.operators
            if sg.tensors[op.outputs[0]].type == 0  # FLOAT32
            and op_name(loaded.model, op.opcodeIndex) != "DEQUANTIZE"
        ]

    ops = backend.ops()
    assert ops[-1].op == "SOFTMAX"
    assert float_ops(backend.build(())) == []
    for op in ops:
        assert float_ops(backend.build([op.name])) == [op.op], op.name


def test_the_ops_reading_the_model_input_are_named(backend):
    # what the repair keeps in float first when the int8 input grid alone fails the gates
    ops = backend.ops()
    assert backend.input_ops() == [ops[0].name] and ops[0].op == "CONV_2D"
    assert "c1" in ops[0].name
