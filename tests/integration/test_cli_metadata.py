"""`liteship metadata show|write` through the real console script."""

from __future__ import annotations

import json
import zipfile

import pytest

REAL = ["mobilenet_v1_0.25_224_quant.tflite", "mobilenet_v1_0.25_224_1_metadata_1.tflite"]


@pytest.mark.parametrize("name", REAL)
def test_show_json_equals_tflite_support_displayer(cli, third_party_models, name):
    result = cli("metadata", "show", str(third_party_models / name), "--json")
    assert result.returncode == 0, result.stderr
    want = json.loads((third_party_models / f"{name}.metadata.json").read_text())
    assert json.loads(result.stdout) == want


def test_show_renders_readable_summary(cli, third_party_models):
    result = cli("metadata", "show", str(third_party_models / REAL[0]))
    assert result.returncode == 0, result.stderr
    for text in ("MobileNetV1 image classifier (quantized)", "normalize", "127.5", "labels.txt", "RGB"):
        assert text in result.stdout


def test_show_model_without_metadata(cli, third_party_models):
    path = str(third_party_models / "whitespace_tokenizer_flex_delegate.tflite")
    result = cli("metadata", "show", path)
    assert result.returncode == 0 and "no TFLite metadata" in result.stdout
    result = cli("metadata", "show", path, "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == {}


def test_write_then_show(cli, tflite_float, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    out = tmp_path / "digits_md.tflite"
    result = cli(
        "metadata", "write", str(tflite_float), "-o", str(out),
        "--name", "digits", "--version", "2.0.0", "--author", "ACME", "--license", "MIT",
        "--labels", str(labels), "--mean", "0", "--std", "255",
        "--input-description", "a digit", "--output-min", "0", "--output-max", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr
    with zipfile.ZipFile(out) as zf:
        assert zf.read("labels.txt") == labels.read_bytes()

    shown = json.loads(cli("metadata", "show", str(out), "--json").stdout)
    assert (shown["name"], shown["version"], shown["author"], shown["license"]) == (
        "digits",
        "2.0.0",
        "ACME",
        "MIT",
    )
    tensor_in = shown["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert tensor_in["description"] == "a digit"
    assert tensor_in["process_units"][0]["options"] == {"mean": [0.0], "std": [255.0]}
    tensor_out = shown["subgraph_metadata"][0]["output_tensor_metadata"][0]
    assert tensor_out["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert tensor_out["stats"] == {"max": [1.0], "min": [0.0]}


def test_write_errors_exit_1_without_traceback(cli, tflite_float, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    result = cli(
        "metadata", "write", str(tflite_float), "-o", str(tmp_path / "o.tflite"), "--labels", str(labels)
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "3 labels given" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.tflite").exists()


def test_write_bad_number_is_a_usage_error(cli, tflite_float, tmp_path):
    result = cli("metadata", "write", str(tflite_float), "-o", str(tmp_path / "o.tflite"), "--mean", "abc")
    assert result.returncode == 2 and "--mean" in result.stderr


def test_show_corrupt_metadata(cli, tflite_float, tmp_path):
    from liteship.model.flatbuffer import set_metadata_entry

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(
        set_metadata_entry(tflite_float.read_bytes(), "TFLITE_METADATA", b"\x10\x00\x00\x00XXXX" + b"\0" * 8)
    )
    result = cli("metadata", "show", str(bad))
    assert result.returncode == 1
    assert "TFLITE_METADATA" in result.stderr and "M001" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mean", "1,2,3", "--std", "1"], "--mean has 3 values, but input 0"),
        (["--mean", "0", "--std", "-1"], "--std [-1.0] must be > 0"),
        (["--std", "0"], "--std [0.0] must be > 0"),  # the real problem, not "needs both"
        (["--input-min", "5", "--input-max", "1"], "--input-min [5.0] is greater than --input-max [1.0]"),
        (["--mean", "127.5"], "only --mean was given. Give --std too"),
    ],
)
def test_write_refuses_invalid_metadata_naming_flags(cli, tflite_float, tmp_path, args, message):
    result = cli("metadata", "write", str(tflite_float), "-o", str(tmp_path / "o.tflite"), *args)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    for param in ("input_mean", "input_std", "input_min", "input_max", "=127.5"):
        assert param not in result.stderr
    assert not (tmp_path / "o.tflite").exists()


def test_write_labels_directory_says_so(cli, tflite_float, tmp_path):
    result = cli(
        "metadata", "write", str(tflite_float), "-o", str(tmp_path / "o.tflite"), "--labels", str(tmp_path)
    )
    assert (
        result.returncode == 1 and "is a directory" in result.stderr and "does not exist" not in result.stderr
    )


def test_written_model_has_the_normal_mode_also_in_place(cli, tflite_float, tmp_path):
    import stat

    out = tmp_path / "o.tflite"
    result = cli("metadata", "write", str(tflite_float), "-o", str(out), "--name", "a")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()  # as open() would; not mkstemp's 0600
    out.chmod(0o640)
    result = cli("metadata", "write", str(out), "-o", str(out), "--name", "b")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask
