"""Validation data the pipeline cannot use stops the run once, before any conversion, with exit 1 — not
one DataError per variant and then "no variant passes the gates" (exit 3), as the newcomer's tour found."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from liteship.errors import DataError
from liteship.pipeline import run_pipeline


def test_nan_validation_data_fails_the_run_before_converting(keras_path, calib_npy, tmp_path):
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((3, 8, 8, 1), np.nan, np.float32))
    config = tmp_path / "liteship.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "source": str(keras_path),
                "model_id": "digits",
                "recipes": ["none"],
                "calibration": {"data": str(calib_npy)},
                "validation": {"data": str(nan)},
            }
        )
    )
    lines: list[str] = []
    with pytest.raises(DataError, match="NaN or Inf in 3 of 3 samples"):  # the CLI's exit 1
        run_pipeline(config, log=lines.append, progress=False)
    assert not any(line.startswith("convert") for line in lines), lines
    assert not list((tmp_path / "out" / "variants").glob("*.tflite"))  # nothing was converted


def test_pipeline_run_help_says_what_it_writes_and_how_it_exits(cli):
    r = cli("pipeline", "run", "--help")
    assert r.returncode == 0 and "report.json" in r.stdout and "Exit 2" in r.stdout and "3 when" in r.stdout
