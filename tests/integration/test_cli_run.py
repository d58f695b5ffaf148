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
    assert report["input_shape"] == [3, 8, 8, 1] and report["preprocessing_source"] == "none"
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


def test_an_empty_batch_is_refused_before_litert_sees_it(cli, tflite_float, tflite_int8, tmp_path):
    """Issue 21 item 12: a (0, 8, 8, 1) input aborted LiteRT (malloc_consolidate, exit 134)."""
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8, 1), np.float32))
    for model in (tflite_float, tflite_int8):
        res = cli("run", str(model), "--input", str(tmp_path / "empty.npy"))
        assert res.returncode == 1, (res.returncode, res.stderr)
        assert "an empty batch" in res.stderr and "Traceback" not in res.stderr


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


@pytest.fixture(scope="module")
def recorded(tflite_int8, tmp_path_factory):
    """The int8 digits model with liteship's record, as `liteship convert --std 16` writes it."""
    from liteship.model.flatbuffer import write_liteship_info

    p = tmp_path_factory.mktemp("rec") / "d_int8.tflite"
    p.write_bytes(
        write_liteship_info(tflite_int8.read_bytes(), {"preprocessing": {"mean": [0], "std": [16]}})
    )
    return p


def test_npy_gets_the_model_preprocessing_like_validate(cli, recorded, digits, tmp_path):
    x, y = digits[2][:40], digits[3][:40]
    np.save(tmp_path / "raw.npy", x * 16)  # raw pixel values 0..16, as validate and calibration take them
    np.save(tmp_path / "norm.npy", x)
    res = cli("run", str(recorded), "--input", str(tmp_path / "raw.npy"), "--top-k", "1", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["preprocessing_source"] == "liteship"
    assert report["preprocessing_text"] == "mean 0 std 16 from the model's liteship record"
    predicted = np.array([t["index"] for t in report["top_k"]])
    assert (predicted == y).mean() > 0.9  # before the fix raw pixels gave one class for everything
    table = cli("run", str(recorded), "--input", str(tmp_path / "raw.npy"), "--top-k", "1")
    assert "preprocessing: mean 0 std 16 from the model's liteship record" in " ".join(table.stdout.split())
    # already normalized: --no-preprocess gives the same answer
    off = cli(
        "run",
        str(recorded),
        "--input",
        str(tmp_path / "norm.npy"),
        "--top-k",
        "1",
        "--json",
        "--no-preprocess",
    )
    assert off.returncode == 0, off.stderr
    assert [t["index"] for t in json.loads(off.stdout)["top_k"]] == predicted.tolist()
    over = cli(
        "run", str(recorded), "--input", str(tmp_path / "norm.npy"), "--top-k", "1", "--json", "--std", "1"
    )
    assert json.loads(over.stdout)["preprocessing_text"] == "no normalization (given explicitly)"
    bad = cli("run", str(recorded), "--input", str(tmp_path / "raw.npy"), "--std", "0")
    assert bad.returncode == 2 and "--std [0.0] must be > 0" in bad.stderr and "std=" not in bad.stderr
    both = cli("run", str(recorded), "--input", str(tmp_path / "raw.npy"), "--std", "2", "--no-preprocess")
    assert both.returncode == 2 and "--std given with --no-preprocess" in both.stderr


def test_nan_input_is_refused(cli, recorded, tmp_path):
    x = np.zeros((8, 8, 1), np.float32)
    x[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    res = cli("run", str(recorded), "--input", str(tmp_path / "nan.npy"))
    assert res.returncode == 1 and "contains NaN or Inf" in res.stderr
    assert "RuntimeWarning" not in res.stderr and "rank" not in res.stdout


def test_output_path_is_checked_and_written_exactly(cli, recorded, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
    args = ("run", str(recorded), "--input", str(tmp_path / "x.npy"), "--output")
    res = cli(*args, str(tmp_path / "y.txt"))
    assert res.returncode == 2 and ".npy" in res.stderr and not list(tmp_path.glob("y.txt*"))
    res = cli(*args, str(tmp_path / "nonexistdir2" / "y.npy"))
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr
    res = cli(*args, str(tmp_path))
    assert res.returncode == 2 and "is a directory" in res.stderr
    res = cli(*args, str(tmp_path / "Y.NPY"))
    assert res.returncode == 0, res.stderr
    assert f"wrote {tmp_path / 'Y.NPY'}" in " ".join(res.stderr.split())
    assert np.load(tmp_path / "Y.NPY").shape == (1, 10) and not (tmp_path / "Y.NPY.npy").exists()


def test_messages_name_flags_and_the_real_file(cli, recorded, third_party_models, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
    res = cli("run", str(recorded), "--input", str(tmp_path / "x.npy"), "--signature", "nope")
    assert res.returncode == 1 and "--signature" in res.stderr and "signature=" not in res.stderr
    assert "d_int8.tflite has no signature 'nope'" in res.stderr
    res = cli("run", str(recorded), "--input", str(tmp_path))
    assert res.returncode == 1 and "is a directory" in res.stderr and "does not exist" not in res.stderr
    flex = third_party_models / "whitespace_tokenizer_flex_delegate.tflite"
    res = cli("run", str(flex), "--input", str(tmp_path / "x.npy"))
    assert res.returncode == 1 and "cannot load whitespace_tokenizer_flex_delegate.tflite" in res.stderr
    assert "model.tflite" not in res.stderr and "ops_selectNode" not in res.stderr
    assert "allow_select_tf_ops" not in res.stderr


def test_relative_delegate_path_is_resolved(cli, recorded, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
    (tmp_path / "random.tflite").write_bytes(recorded.read_bytes())
    res = cli("run", str(recorded), "--input", "x.npy", "--delegate", "random.tflite", cwd=tmp_path)
    assert res.returncode == 1 and "invalid ELF header" in res.stderr
    assert "cannot open shared object file" not in res.stderr and "--delegate-fallback" in res.stderr
