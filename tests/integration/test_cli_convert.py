"""`liteship convert` through the real console script: JSON, the summary, and one-line errors."""

from __future__ import annotations

import json

import pytest

from liteship.model.flatbuffer import read_liteship_info


def test_int8_with_calibration_and_preprocessing_json(cli, saved_model_dir, calib_npy, tmp_path):
    out = tmp_path / "m.tflite"
    result = cli(
        "convert",
        str(saved_model_dir),
        "-o",
        str(out),
        "--quantize",
        "int8",
        "--calibration",
        str(calib_npy),
        "--calibration-samples",
        "40",
        "--mean",
        "0.5",
        "--std",
        "0.25",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds only the JSON (TensorFlow's prints kept off it)
    assert report["recipe"] == "int8" and report["io_type"] == "int8" and report["calibration_samples"] == 40
    assert report["inputs"][0]["dtype"] == "int8" and report["inputs"][0]["scale"] > 0
    assert report["output"] == str(out) and out.stat().st_size == report["size_bytes"]
    assert report["ratio_to_float32"] < 0.4 and "model_bytes" not in report
    assert read_liteship_info(out)["preprocessing"]["mean"] == [0.5]


def test_readable_summary_and_default_output_name(cli, keras_path, tmp_path):
    source = tmp_path / "digits.keras"
    source.write_bytes(keras_path.read_bytes())
    result = cli("convert", str(source), "--quantize", "float16")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "digits.float16.tflite").exists()
    assert "recipe float16" in result.stdout and "of float32" in result.stdout and "CONV_2D" in result.stdout


def test_missing_calibration_names_the_flag(cli, saved_model_dir, tmp_path):
    result = cli("convert", str(saved_model_dir), "-o", str(tmp_path / "m.tflite"), "--quantize", "int16x8")
    assert result.returncode == 2
    assert "`--calibration`" in result.stderr and "`calibration`" not in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{tmp}/missing.keras"], 1, "does not exist"),
        (["{tmp}"], 1, "is not a SavedModel"),
        (["{tmp}/model.keras"], 1, "not a .keras archive"),
        (["{saved}", "--quantize", "int3"], 2, "'int3' is not one of"),
        (["{saved}", "--quantize", "int8", "--calibration", "{tmp}/bad.npy"], 1, "not a numpy file"),
        (["{saved}", "--quantize", "int8", "--calibration", "{tmp}/nothing"], 1, "does not exist"),
        (["{saved}", "--quantize", "dynamic", "--io-type", "int8"], 2, "`--io-type` 'int8' does not work"),
        (["{saved}", "--size", "big"], 2, "--size must be HxW"),
    ],
)
def test_bad_input_is_one_line(args, code, message, cli, saved_model_dir, tmp_path):
    (tmp_path / "model.keras").write_text("not a zip")
    (tmp_path / "bad.npy").write_text("not numpy")
    argv = [a.format(tmp=tmp_path, saved=saved_model_dir) for a in args]
    result = cli("convert", *argv, "-o", str(tmp_path / "out.tflite"))
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unsupported_ops_then_flex(cli, tmp_path):
    import tensorflow as tf

    class Erf(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x):
            return tf.math.erf(x)

    saved = tmp_path / "erf_sm"
    tf.saved_model.save(Erf(), str(saved))
    result = cli("convert", str(saved), "-o", str(tmp_path / "erf.tflite"))
    assert result.returncode == 1
    assert (
        "Erf" in result.stderr
        and "`--allow-select-tf-ops`" in result.stderr
        and "Traceback" not in result.stderr
    )
    result = cli("convert", str(saved), "-o", str(tmp_path / "erf.tflite"), "--allow-select-tf-ops", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["needs_flex"] is True and report["ops"] == {"FlexErf": 1}
