"""smoke_test: what the device runs before swapping a model in."""

from __future__ import annotations

import pytest

from liteship.errors import PackageError
from liteship.package import build_package, extract_verified, open_package, smoke_test

from .conftest import nan_model


def test_a_good_package_passes_from_file_folder_and_memory(package, keys, tmp_path):
    r = smoke_test(package.path, public_key=keys.public_path)
    assert r.ok, r.failures
    assert r.samples == 6 and r.latency_ms_median is not None and r.latency_budget_ms == 500.0
    assert max(r.max_abs_error.values()) < 1e-5
    extract_verified(package.path, keys.public_path, tmp_path / "current")
    assert smoke_test(tmp_path / "current").ok
    assert smoke_test(open_package(package.path, keys.public_path)).to_dict()["ok"] is True
    with pytest.raises(PackageError, match="needs its public key"):
        smoke_test(package.path)


def _golden(package, keys):
    return open_package(package.path, keys.public_path).golden()


def test_nan_outputs_fail(package, keys, tflite_float, tmp_path):
    # a model that turns NaN on the device: its package carries the good model's expected outputs
    inputs, expected = _golden(package, keys)
    info = build_package(
        nan_model(tflite_float), tmp_path, model_id="digits", version="1.2.1",
        private_key=keys.private_path, golden_inputs=inputs, golden_outputs=expected,
    )  # fmt: skip
    r = smoke_test(info.path, public_key=keys.public_path)
    assert not r.ok
    assert any("contains NaN or Inf on 60 values" in f for f in r.failures), r.failures


def test_outputs_beyond_tolerance_and_latency_over_budget_fail(package, keys, tflite_float, tmp_path):
    inputs, expected = _golden(package, keys)
    shifted = {k: v + 0.01 for k, v in expected.items()}
    info = build_package(
        tflite_float, tmp_path, model_id="digits", version="1.3.0", private_key=keys.private_path,
        golden_inputs=inputs, golden_outputs=shifted, golden_tolerance=(0.005, 0.0), latency_budget_ms=1e-6,
    )  # fmt: skip
    r = smoke_test(info.path, public_key=keys.public_path)
    assert not r.ok and len(r.failures) == 2
    assert "differs from the golden output on 60 values" in r.failures[0]
    assert "exceeds the budget of 0.00 ms" in r.failures[1]
    assert r.max_abs_error[next(iter(expected))] == pytest.approx(0.01, abs=1e-5)
    loose = build_package(
        tflite_float, tmp_path / "loose.lsp", model_id="digits", version="1.3.0",
        private_key=keys.private_path, golden_inputs=inputs, golden_outputs=shifted, golden_tolerance=0.02,
    )  # fmt: skip
    assert smoke_test(loose.path, public_key=keys.public_path).ok


def test_folder_damaged_on_disk_is_refused(package, keys, tmp_path):
    dest = tmp_path / "current"
    extract_verified(package.path, keys.public_path, dest)
    data = bytearray((dest / "model.tflite").read_bytes())
    data[-5] ^= 0xFF
    (dest / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(PackageError, match="differs from its manifest"):
        smoke_test(dest)


def test_nan_golden_inputs_fail_without_running(package, keys, golden_x, tmp_path, monkeypatch):
    # build_package refuses NaN golden inputs; a package made without that check must still fail here
    monkeypatch.setattr("liteship.package.golden.check_finite", lambda arr, what: None)
    bad = golden_x.copy()
    bad[1, 0, 0, 0] = float("nan")
    inputs, expected = _golden(package, keys)
    info = build_package(
        open_package(package.path, keys.public_path).model_bytes, tmp_path, model_id="digits", version="1.2.2", private_key=keys.private_path,
        golden_inputs=bad, golden_outputs=expected,
    )  # fmt: skip
    r = smoke_test(info.path, public_key=keys.public_path)
    assert not r.ok and r.samples == 0
    assert any("golden input" in f and "NaN or Inf" in f for f in r.failures), r.failures
