"""build_package: manifest contents, golden outputs, determinism, and what it refuses."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from liteship.errors import PackageError, SignatureError
from liteship.model.flatbuffer import load_model, write_liteship_info
from liteship.package import Manifest, build_package, open_package, verify_package
from liteship.runtime import LiteRTRunner

from .conftest import CREATED, nan_model


def test_manifest_records_everything_the_fleet_needs(package, tflite_float):
    m = package.manifest
    assert Path(package.path).name == "digits-1.2.0.lsp"
    assert package.sha256 == hashlib.sha256(Path(package.path).read_bytes()).hexdigest()
    model = tflite_float.read_bytes()
    assert m.files["model.tflite"].sha256 == hashlib.sha256(model).hexdigest()
    assert m.files["model.tflite"].size == len(model)
    with LiteRTRunner(tflite_float) as r:
        assert m.input_specs == r.input_specs and m.output_specs == r.output_specs
    assert m.runtime["requires"] == ["ai-edge-litert>=2.3"] and m.runtime["needs_flex"] is False
    assert m.reference_histogram == {"bins": [0.0, 0.5, 0.9, 1.0], "counts": [3, 10, 187]}
    assert m.calibration_range == {"min": 0.0, "max": 1.0}
    assert m.metrics == {"accuracy": 0.95, "p50_ms": 0.1} and m.recipe == "none"
    assert m.golden["count"] == 6 and m.golden["latency_budget_ms"] == 500.0 and m.golden["source"] == "given"
    assert m.created == CREATED and m.model["labels"] == "labels.txt"
    with zipfile.ZipFile(package.path) as zf:
        assert zf.read("labels.txt").decode().split() == [str(i) for i in range(10)]
        assert zf.read("manifest.json") == m.canonical_bytes()
    assert Manifest.from_bytes(m.canonical_bytes()) == m


def test_golden_outputs_match_a_fresh_run(package, keys, tflite_float, golden_x):
    inputs, expected = open_package(package.path, keys.public_path).golden()
    (name,) = inputs
    np.testing.assert_array_equal(inputs[name], golden_x)
    with LiteRTRunner(tflite_float, num_threads=1) as r:
        fresh = np.concatenate([r.infer(x[None])[r.output_specs[0].name] for x in golden_x])
    (out,) = expected
    assert expected[out].shape == (6, 10)
    np.testing.assert_allclose(expected[out], fresh, atol=1e-6)
    assert np.allclose(expected[out].sum(axis=1), 1.0, atol=1e-4)  # softmax rows: real outputs, not zeros


def test_same_inputs_give_the_same_bytes(tflite_float, keys, golden_x, tmp_path, monkeypatch):
    kw = dict(model_id="digits", version="1.0.0", private_key=keys.private_path, golden_inputs=golden_x)
    a = build_package(tflite_float, tmp_path / "a.lsp", created=CREATED, **kw)
    b = build_package(tflite_float.read_bytes(), tmp_path / "b.lsp", created=CREATED, **kw)
    assert Path(a.path).read_bytes() == Path(b.path).read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1714564800")  # 2024-05-01T12:00:00Z
    c = build_package(tflite_float, tmp_path / "c.lsp", **kw)
    assert c.manifest.created == CREATED and c.sha256 == a.sha256
    d = build_package(tflite_float, tmp_path / "d.lsp", created="2024-05-01T12:00:01Z", **kw)
    assert d.sha256 != a.sha256


def test_int8_model_with_synthetic_golden_and_model_record(tflite_int8, keys, tmp_path):
    data = write_liteship_info(
        tflite_int8.read_bytes(),
        {"recipe": "int8", "preprocessing": {"mean": [0.0], "std": [16.0]}, "calibration_range": [0.0, 16.0]},
    )
    info = build_package(
        data, tmp_path, model_id="digits-int8", version="2.0.0-rc.1", private_key=keys.private_path
    )
    m = verify_package(info.path, keys.public_path)
    assert m.recipe == "int8" and m.model["preprocessing"] == {"mean": [0.0], "std": [16.0]}
    assert m.calibration_range == {"min": 0.0, "max": 16.0} and m.golden["source"] == "synthetic"
    out_scale = m.output_specs[0].scale
    assert out_scale and m.golden["atol"] == pytest.approx(max(1e-3, 2 * out_scale))
    inputs, _ = open_package(info.path, keys.public_path).golden()
    x = next(iter(inputs.values()))
    assert x.shape == (4, 8, 8, 1) and x.min() >= 0.0 and x.max() <= 16.0 and x.max() > 1.0


def test_refusals(tflite_float, keys, tmp_path):
    kw = dict(private_key=keys.private_path)
    with pytest.raises(PackageError, match="not a semantic version"):
        build_package(tflite_float, tmp_path, model_id="d", version="1.2", **kw)
    with pytest.raises(PackageError, match="model id 'Bad Id' is not valid"):
        build_package(tflite_float, tmp_path, model_id="Bad Id", version="1.0.0", **kw)
    with pytest.raises(SignatureError, match="signing needs the private key"):
        build_package(tflite_float, tmp_path, model_id="d", version="1.0.0", private_key=keys.public_path)
    with pytest.raises(PackageError, match="one more edge than counts"):
        build_package(
            tflite_float,
            tmp_path,
            model_id="d",
            version="1.0.0",
            reference_histogram={"bins": [0, 1], "counts": [1, 2]},
            **kw,
        )
    with pytest.raises(PackageError, match="unsafe"):
        build_package(tflite_float, tmp_path, model_id="d", version="1.0.0", extra_files={"../x": b"1"}, **kw)
    with pytest.raises(PackageError, match="expected \\(N, ...\\) like"):
        build_package(
            tflite_float, tmp_path, model_id="d", version="1.0.0", golden_inputs=np.zeros((2, 3)), **kw
        )
    assert list(tmp_path.iterdir()) == []


def test_a_model_producing_nan_is_not_packaged(tflite_float, keys, tmp_path):
    bad = nan_model(tflite_float)
    load_model(bad)  # still a valid flatbuffer
    with pytest.raises(PackageError, match="contains NaN or Inf; refusing to package"):
        build_package(bad, tmp_path, model_id="d", version="1.0.0", private_key=keys.private_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_golden_inputs_are_refused(tflite_float, keys, golden_x, tmp_path, value):
    bad = golden_x.copy()
    bad[2, 3, 4, 0] = value
    with pytest.raises(
        PackageError, match=r"golden input .* contains NaN or Inf \(1 of 384 values, in samples \[2\]\)"
    ):
        build_package(
            tflite_float,
            tmp_path,
            model_id="d",
            version="1.0.0",
            private_key=keys.private_path,
            golden_inputs=bad,
        )
    assert not list(tmp_path.iterdir())
    np.save(tmp_path / "nan.npy", bad)  # the same through a file, as `liteship package --golden` gives it
    with pytest.raises(PackageError, match="NaN or Inf"):
        build_package(
            tflite_float, tmp_path / "o.lsp", model_id="d", version="1.0.0", private_key=keys.private_path,
            golden_inputs=tmp_path / "nan.npy",
        )  # fmt: skip


def test_package_file_mode_and_overwrite(tflite_float, keys, golden_x, tmp_path):
    import os
    import stat

    kw = dict(model_id="d", version="1.0.0", private_key=keys.private_path, golden_inputs=golden_x[:1])
    out = tmp_path / "d.lsp"
    old = os.umask(0o002)
    try:
        build_package(tflite_float, out, **kw)
        assert stat.S_IMODE(out.stat().st_mode) == 0o664  # 0o666 & ~umask, not mkstemp's 0600
        out.chmod(0o640)
        build_package(tflite_float, out, description="again", **kw)  # the default replaces …
        assert stat.S_IMODE(out.stat().st_mode) == 0o640  # … and keeps the file's mode
    finally:
        os.umask(old)
    before = out.read_bytes()
    with pytest.raises(
        PackageError, match=r"already exists; refusing to overwrite a package.*overwrite=True"
    ):
        build_package(tflite_float, out, overwrite=False, **kw)
    assert out.read_bytes() == before
    build_package(tflite_float, tmp_path / "new.lsp", overwrite=False, **kw)  # a new file is fine
