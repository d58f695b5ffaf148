"""``liteship inspect`` through the real console script."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

QUANT = "mobilenet_v1_0.25_224_quant.tflite"
FLEX = "whitespace_tokenizer_flex_delegate.tflite"


def test_json_on_the_uint8_mobilenet(cli, third_party_models):
    r = cli("inspect", str(third_party_models / QUANT), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["kind"] == "full-int8"
    assert d["inputs"][0] == {
        "name": "input",
        "shape": [1, 224, 224, 3],
        "dtype": "uint8",
        "scale": 0.0078125,
        "zero_point": 128,
    }
    assert d["associated_files"] == {"labels.txt": 10484}
    assert [m["label"] for m in d["metadata"]] == ["TFLite Metadata"]
    assert [t["target"] for t in d["targets"]] == ["cpu", "xnnpack", "gpu", "edgetpu", "micro"]


def test_human_output(cli, third_party_models):
    r = cli("inspect", str(third_party_models / QUANT))
    assert r.returncode == 0, r.stderr
    for text in (
        "full-int8",
        "DEPTHWISE_CONV_2D",
        "labels.txt",
        "TFLite Metadata",
        "0.0078125",
        "Deployability",
    ):
        assert text in r.stdout


def test_targets_on_the_flex_model(cli, third_party_models):
    r = cli("inspect", str(third_party_models / FLEX), "--target", "gpu", "--target", "EDGETPU")
    assert r.returncode == 0, r.stderr
    assert "GPU delegate: blocked" in r.stdout and "Coral Edge TPU: blocked" in r.stdout
    assert "FlexWhitespaceTokenizeWithOffsets" in r.stdout and "rules:" in r.stdout
    d = json.loads(cli("inspect", str(third_party_models / FLEX), "--target", "all", "--json").stdout)
    assert {t["verdict"] for t in d["targets"]} == {"blocked"} and len(d["targets"]) == 5
    assert "FlexSub" in d["flex_ops"]


def test_converted_int8_model(cli, tflite_int8):
    d = json.loads(cli("inspect", str(tflite_int8), "--json", "--target", "micro").stdout)
    assert d["kind"] == "full-int8" and d["inputs"][0]["dtype"] == "int8"
    assert d["quantization"]["per_channel"] >= 2
    assert d["targets"] == [d["targets"][0]] and d["targets"][0]["verdict"] == "ok"


def _bad_files(tmp_path, third_party_models) -> dict[str, object]:
    good = (third_party_models / QUANT).read_bytes()
    flipped = bytearray(good)
    flipped[0] ^= 0x40  # the root table offset now points past the end
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("model.tflite", good[:100])
    files = {
        "truncated": good[: len(good) // 3],
        "bitflipped": bytes(flipped),
        "empty": b"",
        "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "zip": zipped.getvalue(),
    }
    paths: dict[str, object] = {}
    for name, data in files.items():
        p = tmp_path / f"{name}.tflite"
        p.write_bytes(data)
        paths[name] = p
    paths["missing"] = tmp_path / "missing.tflite"
    paths["directory"] = tmp_path
    return paths


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("truncated", "truncated or corrupted"),
        ("bitflipped", "truncated or corrupted"),
        ("empty", "0 bytes long"),
        ("png", "not a TFLite model"),
        ("zip", "zip archive"),
        ("missing", "does not exist"),
        ("directory", "is a directory"),
    ],
)
def test_bad_input_is_one_line_exit_1(cli, tmp_path, third_party_models, case, expect):
    path = _bad_files(tmp_path, third_party_models)[case]
    r = cli("inspect", str(path), "--json")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0]


def test_unknown_target_is_a_usage_error(cli, third_party_models):
    r = cli("inspect", str(third_party_models / QUANT), "--target", "tpu")
    assert r.returncode == 2 and "tpu" in r.stderr and "edgetpu" in r.stderr


def test_dynamic_batch_micro_verdict_carries_its_note(cli, tflite_int8):
    # the session's int8 model keeps Keras's open batch ([-1, 8, 8, 1])
    r = cli("inspect", str(tflite_int8), "--target", "micro")
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout and "note:" in r.stdout and "shape_signature" in r.stdout
    d = json.loads(cli("inspect", str(tflite_int8), "--target", "micro", "--json").stdout)
    assert d["targets"][0]["verdict"] == "ok" and d["targets"][0]["notes"]
    assert "micro ok*" in cli("inspect", str(tflite_int8)).stdout


def test_keras_file_suggests_convert(cli, keras_path):
    r = cli("inspect", str(keras_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "is a Keras model" in r.stderr and "liteship convert" in r.stderr and "verify" not in r.stderr
