"""Accuracy repair end to end on the outlier-channel CNN: plain int8 fails; equalization repairs it with no
float layer; without graph fixes, the search finds the minimal float set and keeps int8 I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from liteship.model.inspect import inspect_model
from liteship.pipeline import run_pipeline

pytestmark = pytest.mark.slow

GATES = {"max_accuracy_drop": 0.5, "min_agreement": 0.98}


def _config(folder: Path, outlier_path, calib_npy, val_npz, **amp) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "source": str(outlier_path),
        "model_id": "outlier",
        "recipes": ["none", "int8"],
        "io_type": "int8",
        "calibration": {"data": str(calib_npy), "samples": 100},
        "validation": {"data": str(val_npz)},
        "bench": {"threads": [1], "runs": 10, "min_seconds": 0.0},
        "gates": GATES,
        "objective": "size",  # int8 is no faster than float32 on AVX2 without VNNI: ship the small one
        "auto_mixed_precision": {"enabled": True, "recipe": "int8", **amp},
    }
    path = folder / "liteship.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_equalization_repairs_the_outlier_model_with_no_float_layer(
    tmp_path, outlier_path, calib_npy, digits_val_full_npz
):
    report = run_pipeline(
        _config(tmp_path, outlier_path, calib_npy, digits_val_full_npz), log=lambda _: None, progress=False
    )
    mp = report.mixed_precision
    plain, fixed, ref = report.variant("int8"), report.variant(mp.recipe), report.variant("none")
    assert not plain.gates_passed and plain.accuracy_drop > 10  # plain int8 collapses
    # range setting is tried first; it cannot fix an outlier *channel* (the range is per tensor), so it is
    # dropped (or kept, if it helped) and equalization repairs the model
    assert mp.recipe in ("int8+eq", "int8+pct+eq") and mp.search is None and mp.float_layers == []
    assert fixed.gates_passed and fixed.keep_float_layers == [] and "equalize" in fixed.graph_fixes
    assert abs(fixed.accuracy - ref.accuracy) <= 0.005  # within 0.5 points of float
    assert [a.variant for a in mp.attempts] == ["int8+pct", mp.recipe] and mp.attempts[-1].passed
    assert not mp.attempts[0].passed
    assert mp.cost.float_layers == 0 and mp.cost.size_vs_int8 == pytest.approx(1.0, abs=0.05)
    assert inspect_model(fixed.path).inputs[0].dtype == "int8"  # the requested I/O type is kept
    html = Path(report.report_html).read_text()
    assert "Accuracy repair" in html and mp.recipe in html


def test_search_finds_the_minimal_float_set_when_graph_fixes_are_off(
    tmp_path, outlier_path, calib_npy, digits_val_full_npz
):
    lines: list[str] = []
    cfg = _config(tmp_path, outlier_path, calib_npy, digits_val_full_npz, repair=[])  # the search alone
    report = run_pipeline(cfg, log=lines.append, progress=False)
    mp = report.mixed_precision
    mixed = report.variant("int8+mixed")
    assert mp.recipe == "int8+mixed" and mixed.gates_passed and len(mixed.keep_float_layers) == 2
    assert {n.split("/")[1].split("_")[0] for n in mixed.keep_float_layers} == {"c1", "c2"}
    s = mp.search
    assert s["passed"] and s["minimal"] and not s["exhausted"]
    measured = {frozenset(r["float_layers"]): r["measurement"] for r in s["rounds"]}
    for name in mixed.keep_float_layers:  # each removal fails the gate
        assert not measured[frozenset(set(mixed.keep_float_layers) - {name})]["passed"]
    assert inspect_model(mixed.path).inputs[0].dtype == "int8"
    data = json.loads(Path(report.report_json).read_text())
    rounds = data["mixed_precision"]["search"]["rounds"]
    first = rounds[1]
    assert first["layer"] and first["effect"] is not None
    assert {"accuracy", "p50_ms", "size_bytes"} <= set(first["measurement"])
    assert first["measurement"]["p50_ms"] > 0 and first["measurement"]["size_bytes"] > 0
    assert data["mixed_precision"]["cost"]["float_layers"] == 2
    assert sum(line.startswith("search   round") for line in lines) == len(rounds)  # progress, round by round
    html = Path(report.report_html).read_text()
    assert 'id="rounds"' in html or "id='rounds'" in html


def test_a_spent_overhead_budget_skips_the_fixes_and_the_search_and_says_so(
    tmp_path, outlier_path, calib_npy, digits_val_full_npz
):
    # max_overhead bounds the repair by the wall time of the plain run before it; 1 % of it is less than
    # one more variant costs, so nothing is tried and the report says why (nothing fails silently)
    lines: list[str] = []
    cfg = _config(tmp_path, outlier_path, calib_npy, digits_val_full_npz, max_overhead=0.01)
    report = run_pipeline(cfg, log=lines.append, progress=False, raise_on_gate=False)
    mp = report.mixed_precision
    assert mp.recipe is None and [a.passed for a in mp.attempts] == [False]
    assert "repair budget is spent" in mp.attempts[0].error and "max_overhead 0.01" in mp.attempts[0].error
    assert mp.search is not None and "repair budget is spent" in mp.search["error"]
    assert any("search did not run" in w for w in report.warnings)
    assert not any(line.startswith("convert  int8+") for line in lines)  # no fix variant was converted


@pytest.mark.parametrize("kind", ["keras", "tflite"])
def test_the_depthwise_pattern_is_repaired_with_no_float_op_from_keras_and_tflite_sources(
    kind, tmp_path, depthwise_outlier_path, depthwise_outlier_tflite, calib_npy, digits_val_full_npz
):
    # issue 20: pointwise → BN → ReLU → depthwise with outlier channels; equalization must see the depthwise
    # consumer (Keras layers for a .keras source, the float graph for a .tflite source)
    source = depthwise_outlier_path if kind == "keras" else depthwise_outlier_tflite
    config = _config(tmp_path, source, calib_npy, digits_val_full_npz)
    if kind == "tflite":  # a float .tflite source keeps float32 model I/O
        cfg = yaml.safe_load(config.read_text())
        del cfg["io_type"]
        config.write_text(yaml.safe_dump(cfg))
    report = run_pipeline(config, log=lambda _: None, progress=False)
    mp = report.mixed_precision
    plain, ref = report.variant("int8"), report.variant("none")
    assert not plain.gates_passed and plain.accuracy_drop > 5
    assert mp.recipe is not None and "eq" in mp.recipe.split("+") and mp.float_layers == [], mp.to_dict()
    fixed = report.variant(mp.recipe)
    assert fixed.gates_passed and abs(fixed.accuracy - ref.accuracy) <= 0.005


def test_a_second_range_setting_is_skipped_not_converted_as_a_copy(
    tmp_path, outlier_path, calib_npy, digits_val_full_npz
):
    """A variant has one range setting (VariantSpec.range_setting): with graph_fixes.range_setting
    percentile, the repair's range_mse is skipped and says why, instead of converting int8+pct+mse, which
    was int8+pct again under another name."""
    path = _config(tmp_path, outlier_path, calib_npy, digits_val_full_npz, repair=["range_mse", "equalize"])
    cfg = yaml.safe_load(path.read_text())
    cfg["graph_fixes"] = {"range_setting": "percentile"}
    path.write_text(yaml.safe_dump(cfg))
    report = run_pipeline(path, log=lambda _: None, progress=False)
    mp = report.mixed_precision
    first = mp.attempts[0]
    assert first.variant == "int8+pct+mse" and not first.passed
    assert (
        first.error == "range_percentile already sets the activation ranges (a variant has one range setting)"
    )
    assert report.variant("int8+pct+mse") is None  # never converted
    assert mp.attempts[1].variant == "int8+pct+eq" and report.variant("int8").graph_fixes == [
        "range_percentile"
    ]
