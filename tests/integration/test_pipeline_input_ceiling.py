"""The inputs' own limit: a model whose decision hangs on input differences finer than the int8 input's
step. Rounding its inputs to that grid alone fails the gates, so no int8-input variant can pass: the
repair says so, takes float32 model I/O when no io_type was asked for, and the search keeps the first
layer in float (the only way the inputs reach the model unrounded); with io_type int8 it stops at once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from liteship.model.inspect import inspect_model
from liteship.pipeline import run_pipeline

pytestmark = pytest.mark.slow

STEP = 1 / 255  # the int8 input's step for inputs calibrated on [0, 1]


def _samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x in [0, 1]^8; the class is the sign of x0 − x1, which is within ±STEP for every sample."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 0.9, size=(n, 8)).astype(np.float32)
    d = rng.uniform(-STEP, STEP, size=n).astype(np.float32)
    x[:, 1] = x[:, 0] + d
    x[:, 7] = np.where(np.arange(n) % 2 == 0, 0.0, 1.0)  # the calibrated input range is exactly [0, 1]
    return x, (d < 0).astype(np.int64)  # class 1 when x0 > x1


@pytest.fixture(scope="module")
def fine_model(tmp_path_factory) -> Path:
    """Dense(4, relu) detects the sign of x0 − x1 with gain 500; Dense(2) and a softmax read it out."""
    from liteship._tf import import_tf

    import_tf()
    import keras

    inp = keras.Input((8,))
    h = keras.layers.Dense(4, activation="relu", name="detect")(inp)
    out = keras.layers.Dense(2, activation="softmax", name="readout")(h)
    model = keras.Model(inp, out)
    w1 = np.zeros((8, 4), np.float32)
    w1[0, 0], w1[1, 0] = 500.0, -500.0  # relu(500 (x0 - x1))
    w1[0, 1], w1[1, 1] = -500.0, 500.0  # relu(500 (x1 - x0))
    w1[2:7, 2:] = 0.1  # two units that carry the rest of the input (a real model's other features)
    model.get_layer("detect").set_weights([w1, np.zeros(4, np.float32)])
    w2 = np.array([[-1.0, 1.0], [1.0, -1.0], [0.01, 0.01], [0.01, 0.01]], np.float32)
    model.get_layer("readout").set_weights([w2, np.zeros(2, np.float32)])
    folder = tmp_path_factory.mktemp("fine")
    path = folder / "fine.keras"
    model.save(path)
    xc, _ = _samples(200, 1)
    np.save(folder / "calib.npy", xc)
    xv, yv = _samples(300, 2)
    np.savez(folder / "val.npz", x=xv, y=yv)
    return path


def _config(folder: Path, model: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "source": str(model),
        "model_id": "fine",
        "recipes": ["none", "int8"],
        "calibration": {"data": str(model.parent / "calib.npy"), "samples": 200},
        "validation": {"data": str(model.parent / "val.npz")},
        "bench": {"threads": [1], "runs": 5, "min_seconds": 0.0},
        "gates": {"min_agreement": 0.98, "max_accuracy_drop": 2.0},
        "objective": "size",
        "auto_mixed_precision": {"enabled": True, "recipe": "int8", "repair": []},
        **extra,
    }
    path = folder / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_integer_inputs_that_cannot_pass_make_the_repair_take_float_io(tmp_path, fine_model):
    lines: list[str] = []
    report = run_pipeline(
        _config(tmp_path, fine_model), log=lines.append, progress=False, raise_on_gate=False
    )
    mp = report.mixed_precision
    plain = report.variant("int8")
    assert not plain.gates_passed and inspect_model(plain.path).inputs[0].dtype == "int8"
    c = mp.input_ceiling
    assert c is not None and c.input_type == "int8" and not c.passed and c.agreement < 0.9
    assert any("min_agreement" in f or "agreement" in f for f in c.failures)
    assert mp.io_type == "float32"
    # the float-I/O variant alone still rounds its inputs (its first op quantizes them): kept, not enough
    assert [a.variant for a in mp.attempts] == ["int8+fio"] and not mp.attempts[0].passed
    assert mp.recipe == "int8+fio+mixed"
    mixed = report.variant("int8+fio+mixed")
    layers = [n.split("/")[1].split("_")[0] for n in mixed.keep_float_layers]
    assert mixed.gates_passed and layers == ["detect"]
    assert inspect_model(mixed.path).inputs[0].dtype == "float32"
    assert mp.search["passed"] and mp.search["minimal"] and not mp.search["exhausted"]
    assert any("as int8 rounds them, fails the gates too" in line for line in lines)
    data = json.loads(Path(report.report_json).read_text())
    assert data["mixed_precision"]["input_ceiling"]["passed"] is False
    html = Path(report.report_html).read_text()
    assert "id='input-ceiling'" in html and "float32</b> model I/O" in html


def test_a_requested_integer_io_type_stops_the_repair_and_says_why(tmp_path, fine_model):
    report = run_pipeline(
        _config(tmp_path, fine_model, io_type="int8"), log=lambda _: None, progress=False, raise_on_gate=False
    )
    mp = report.mixed_precision
    assert mp.input_ceiling is not None and not mp.input_ceiling.passed
    assert (
        mp.skipped
        and "no variant with int8 inputs can pass" in mp.skipped
        and "io_type: float32" in mp.skipped
    )
    assert mp.attempts == [] and mp.search is None and mp.recipe is None
    assert [v.recipe for v in report.variants] == ["none", "int8"]  # nothing more was converted
    assert any("no variant with int8 inputs can pass" in w for w in report.warnings)
