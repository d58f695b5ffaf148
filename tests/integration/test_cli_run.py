"""`liteship run` through the real console script: .npy, images, top-k with the model's own labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

METADATA_MODEL = "mobilenet_v1_0.25_224_1_metadata_1.tflite"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image

    p = tmp_path_factory.mktemp("img") / "noise.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (180, 260, 3), dtype=np.uint8)).save(p)
    return p


def test_npy_in_npy_out(cli, tflite_int8, tflite_float, digits, tmp_path):
    from liteship.runtime import LiteRTRunner

    x = digits[2][:3]
    np.save(tmp_path / "x.npy", x)
    res = cli(
        "run",
        str(tflite_int8),
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "y.npy"),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (3, 10) and y.dtype == np.float32
    with LiteRTRunner(tflite_int8) as r:
        np.testing.assert_array_equal(y, next(iter(r.infer(x).values())))
    assert report["input_shape"] == [3, 8, 8, 1] and report["preprocessing_source"] == "array"
    assert len(report["top_k"]) == 15 and report["top_k"][0]["index"] == int(y[0].argmax())


def test_image_top_k_with_metadata_labels(cli, third_party_models, image):
    from liteship.data import load_image
    from liteship.model.flatbuffer import associated_files
    from liteship.model.metadata import normalization_from_metadata
    from liteship.runtime import LiteRTRunner

    path = third_party_models / METADATA_MODEL
    res = cli("run", str(path), "--input", str(image), "--top-k", "3", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    labels = associated_files(path.read_bytes())["labels.txt"].decode().splitlines()
    assert report["labels_source"] == "metadata" and report["preprocessing_source"] == "metadata"
    # the same prediction computed independently
    with LiteRTRunner(path) as r:
        x = load_image(image, normalization_from_metadata(path), r.input_specs[0].shape)
        (probs,) = r.infer(x).values()
    best = np.argsort(-probs[0])[:3]
    assert [t["index"] for t in report["top_k"]] == best.tolist()
    assert [t["label"] for t in report["top_k"]] == [labels[i] for i in best]

    table = cli("run", str(path), "--input", str(image), "--top-k", "2")
    assert table.returncode == 0, table.stderr
    assert labels[best[0]] in table.stdout and "XNNPACK" in table.stdout


def test_labels_file_overrides_metadata(cli, third_party_models, image, tmp_path):
    (tmp_path / "labels.txt").write_text("\n".join(f"class-{i}" for i in range(1001)))
    res = cli(
        "run",
        str(third_party_models / METADATA_MODEL),
        "--input",
        str(image),
        "--labels",
        str(tmp_path / "labels.txt"),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    top = json.loads(res.stdout)["top_k"]
    assert len(top) == 5 and all(t["label"] == f"class-{t['index']}" for t in top)


def test_errors_exit_1_with_a_message(cli, tflite_float, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((1, 5, 5, 1), np.float32))
    res = cli("run", str(tflite_float), "--input", str(tmp_path / "bad.npy"))
    assert res.returncode == 1 and "expected [-1, 8, 8, 1]" in res.stderr and "Traceback" not in res.stderr
    res = cli(
        "run",
        str(tflite_float),
        "--input",
        str(tmp_path / "bad.npy"),
        "--delegate",
        str(tmp_path / "none.so"),
    )
    assert res.returncode == 1 and "cannot load delegate library" in res.stderr
    res = cli("run", str(tflite_float), "--input", str(tmp_path / "bad.npy"), "--delegate-option", "a")
    assert res.returncode == 2
