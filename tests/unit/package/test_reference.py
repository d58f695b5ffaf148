"""Issue 11 (8): `package` outside the pipeline keeps the metadata's labels and can compute the drift
reference from validation data, with the same histogram function and preprocessing as the pipeline."""

from __future__ import annotations

import json

import numpy as np

from liteship.package import build_package, verify_package
from liteship.package.reference import reference_histogram
from liteship.runtime import LiteRTRunner
from liteship.validate.metrics import confidence_histogram


def test_reference_data_gives_the_validation_histogram(tflite_float, val_npz, keys, tmp_path):
    info = build_package(tflite_float, tmp_path, model_id="digits", version="1.0.0",
                         private_key=keys.private_path, reference_data=val_npz)  # fmt: skip
    ref = verify_package(info.path, keys.public_path).reference_histogram
    x = np.load(val_npz)["x"]
    assert ref is not None and sum(ref["counts"]) == len(x)
    # the same numbers validate's own function gives on the same outputs
    with LiteRTRunner(str(tflite_float), num_threads=1) as r:
        spec, out = r.input_specs[0], r.output_specs[0]
        y = np.concatenate([r.infer({spec.name: s[None].astype(np.float32)})[out.name] for s in x])
    expected = confidence_histogram(out.name, y)
    assert ref["counts"] == list(expected.counts) and ref["bins"] == list(expected.bins)
    assert reference_histogram(tflite_float, val_npz)["counts"] == ref["counts"]


def test_labels_from_the_model_metadata_are_kept(third_party_models, keys, tmp_path):
    model = third_party_models / "mobilenet_v1_0.25_224_1_metadata_1.tflite"
    info = build_package(model, tmp_path, model_id="mobilenet", version="1.0.0",
                         private_key=keys.private_path)  # fmt: skip
    m = verify_package(info.path, keys.public_path)
    assert m.model["labels"] == "labels.txt" and "labels.txt" in m.files


def test_cli_reference_data(cli, tflite_float, val_npz, keys, tmp_path):
    r = cli("package", str(tflite_float), "--id", "digits", "--version", "1.0.0", "--key",
            str(keys.private_path), "--reference-data", str(val_npz), "-o", str(tmp_path), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ref = json.loads(r.stdout)["manifest"]["reference_histogram"]
    assert sum(ref["counts"]) == len(np.load(val_npz)["x"])
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 8, 8, 1)))
    r = cli("package", str(tflite_float), "--id", "digits", "--version", "1.0.1", "--key",
            str(keys.private_path), "--reference-data", str(bad), "-o", str(tmp_path))  # fmt: skip
    assert r.returncode == 1 and "'x'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "digits-1.0.1.lsp").exists()
