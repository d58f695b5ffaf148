"""The test-only output perturbation of validation jobs: every variant, or only the variants named."""

from __future__ import annotations

import numpy as np

from liteship.agent.jobs_validate import NOISE_ENV, _noise


def test_noise_for_every_variant_or_only_the_named_ones(monkeypatch):
    out = {"y": np.linspace(0, 1, 20, dtype=np.float32).reshape(2, 10), "i": np.arange(4, dtype=np.int8)}
    monkeypatch.delenv(NOISE_ENV, raising=False)
    assert _noise(out, "int8.tflite") is out
    monkeypatch.setenv(NOISE_ENV, "3.0")
    assert not np.array_equal(_noise(out, "none.tflite")["y"], out["y"])
    monkeypatch.setenv(NOISE_ENV, "int8.tflite=3.0,other.tflite=1")
    assert not np.array_equal(_noise(out, "int8.tflite")["y"], out["y"])
    assert np.array_equal(_noise(out, "int8.tflite")["i"], out["i"])  # integer outputs are left alone
    assert _noise(out, "none.tflite") is out
