"""Bad numpy files and non-finite samples: one clear DataError each (found on the newcomer's tour: a
garbage .npz was reported as "pickled data, load it with allow_pickle", and NaN validation data passed
validate with exit 0)."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.data import load_dataset, load_numpy
from liteship.errors import DataError


def test_garbage_empty_truncated_and_pickled_files_say_what_they_are(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"nope, not numpy")
    with pytest.raises(DataError, match="not a numpy file") as e:
        load_numpy(garbage)
    assert "allow_pickle" not in str(e.value)

    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"is empty \(0 bytes\)"):
        load_numpy(empty)

    whole = tmp_path / "whole.npz"
    np.savez(whole, x=np.arange(1000.0))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or corrupted"):
        load_numpy(truncated)

    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Python objects"):
        load_numpy(pickled)

    assert load_numpy(whole)["x"].shape == (1000,)
    misnamed = tmp_path / "misnamed.npy"
    misnamed.write_bytes(whole.read_bytes())
    with pytest.raises(DataError, match="named .npy"):
        load_dataset(misnamed)


def test_non_finite_samples_are_refused_with_their_index():
    x = np.zeros((5, 4), np.float32)
    x[3, 1] = np.nan
    x[4, 0] = np.inf
    with pytest.raises(DataError, match=r"NaN or Inf in 2 of 5 samples \(first: sample 3\)"):
        load_dataset(x)
    assert len(load_dataset(np.arange(6, dtype=np.int64).reshape(3, 2))) == 3  # integers are finite


def test_cli_validate_and_run_refuse_nan_and_garbage_data(cli, tflite_float, tmp_path):
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((2, 8, 8, 1), np.nan, np.float32))
    r = cli("validate", str(tflite_float), "--reference", str(tflite_float), "--data", str(nan))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "NaN or Inf in 2 of 2 samples" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"nope, not numpy")
    r = cli("run", str(tflite_float), "--input", str(garbage))
    assert r.returncode == 1 and "not a numpy file" in r.stderr and "allow_pickle" not in r.stderr
