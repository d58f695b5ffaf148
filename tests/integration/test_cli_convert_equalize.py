"""`liteship convert --equalize/--bias-correction` through the real console script."""

from __future__ import annotations

import json


def test_convert_equalize_reports_the_fix_and_keeps_float_outputs(
    convert_cli, outlier_path, calib_npy, tmp_path
):
    out = tmp_path / "eq.tflite"
    res = convert_cli(outlier_path, out, calib_npy, "--equalize", "--json")
    assert res.returncode == 0, res.stderr
    fixes = json.loads(res.stdout)["graph_fixes"]["equalize"]
    assert ("c1", "c2") in {(p["first"], p["second"]) for p in fixes["pairs"]}
    assert fixes["max_abs_diff"] < 1e-4 and out.is_file()


def test_fixes_with_a_recipe_that_does_not_quantize_activations_is_a_usage_error(cli, outlier_path, tmp_path):
    res = cli(
        "convert", str(outlier_path), "-o", str(tmp_path / "x.tflite"), "-q", "dynamic", "--bias-correction"
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--bias-correction" in res.stderr and "int8" in res.stderr


def test_convert_range_setting_reports_the_ranges_it_set(convert_cli, outlier_path, calib_npy, tmp_path):
    out = tmp_path / "pct.tflite"
    res = convert_cli(outlier_path, out, calib_npy, "--range-setting", "percentile", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    ranges = report["graph_fixes"]["range_setting"]
    assert (
        ranges["method"] == "percentile"
        and ranges["tensors"] > 0
        and 0 < ranges["narrowed"] <= ranges["tensors"]
    )
    assert report["io_type"] == "int8" and out.is_file()


def test_range_setting_with_int16x8_is_a_usage_error(convert_cli, outlier_path, calib_npy, tmp_path):
    res = convert_cli(
        outlier_path, tmp_path / "x.tflite", calib_npy, "--range-setting", "mse", recipe="int16x8"
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--range-setting" in res.stderr and "older calibrator" in res.stderr
