"""`liteship convert --absorb-high-bias` through the real console script: the report, and the usage errors
of the combinations it cannot serve."""

from __future__ import annotations

import json

ABSORB_TOLERANCE = 1e-4  # the outlier CNN's outputs are probabilities: float32 round-off only


def test_convert_equalize_then_absorb_reports_pairs_moved_and_skipped(
    convert_cli, outlier_path, calib_npy, tmp_path
):
    out = tmp_path / "hb.tflite"
    res = convert_cli(outlier_path, out, calib_npy, "--equalize", "--absorb-high-bias", "--json")
    assert res.returncode == 0, res.stderr
    fixes = json.loads(res.stdout)["graph_fixes"]
    assert list(fixes) == ["equalize", "absorb_high_bias"]  # equalization first: it makes biases large
    hb = fixes["absorb_high_bias"]
    assert hb["method"] == "data" and hb["samples"] == 200
    assert hb["pairs"] and hb["total_bias_moved"] > 0
    assert hb["total_bias_moved"] == sum(p["bias_moved"] for p in hb["pairs"])
    assert all(p["range_after"] <= p["range_before"] for p in hb["pairs"])
    skipped = {s["first"]: s["reason"] for s in hb["skipped"]}
    assert "pads its input with zeros" in skipped["c1"]  # c2 is a 'same' 3×3 conv: not exact at the border
    assert hb["max_abs_diff"] < ABSORB_TOLERANCE and out.is_file()


def test_absorb_with_int16x8_is_a_usage_error(convert_cli, outlier_path, calib_npy, tmp_path):
    res = convert_cli(outlier_path, tmp_path / "x.tflite", calib_npy, "--absorb-high-bias", recipe="int16x8")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--absorb-high-bias" in res.stderr and "16 bits" in res.stderr and "int8-fallback" in res.stderr


def test_absorb_on_a_float_tflite_source_acts_on_its_graph(convert_cli, tflite_float, calib_npy, tmp_path):
    # issue 20: every repair on every source — the float .tflite's graph takes high-bias absorption too
    res = convert_cli(tflite_float, tmp_path / "x.tflite", calib_npy, "--absorb-high-bias")
    assert res.returncode == 0, res.stderr
    assert "absorb_high_bias:" in res.stdout and "tflite-mlir-quantizer" in res.stdout
    assert (tmp_path / "x.tflite").exists()


def test_adaround_on_a_keras_source_is_a_usage_error(convert_cli, keras_path, calib_npy, tmp_path):
    res = convert_cli(keras_path, tmp_path / "x.tflite", calib_npy, "--adaround")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--adaround" in res.stderr and "float .tflite" in res.stderr
    assert not (tmp_path / "x.tflite").exists()
