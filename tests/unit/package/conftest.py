"""Fixtures for package tests: one key pair and one package built from the session's float model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liteship.model.flatbuffer import load_model, pack_model
from liteship.package import build_package, generate_keypair

CREATED = "2024-05-01T12:00:00Z"


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys") / "signer.key")


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys") / "other.key")


@pytest.fixture(scope="session")
def golden_x(digits) -> np.ndarray:
    return digits[2][:6]


@pytest.fixture(scope="session")
def package(tflite_float, keys, golden_x, tmp_path_factory):
    """A package of the float digits model with real golden inputs, a histogram and labels."""
    return build_package(
        tflite_float,
        tmp_path_factory.mktemp("pkg"),
        model_id="digits",
        version="1.2.0",
        private_key=keys.private_path,
        recipe="none",
        metrics={"accuracy": 0.95, "p50_ms": 0.1},
        reference_histogram={"bins": [0.0, 0.5, 0.9, 1.0], "counts": [3, 10, 187]},
        golden_inputs=golden_x,
        latency_budget_ms=500.0,
        calibration_range=(0.0, 1.0),
        labels=[str(i) for i in range(10)],
        created=CREATED,
    )


def nan_model(path: Path) -> bytes:
    """The model with every float weight buffer set to NaN (so every output is NaN)."""
    loaded = load_model(path)
    model = loaded.model
    for sg in model.subgraphs:
        for t in sg.tensors:
            buf = model.buffers[t.buffer]
            if t.type == 0 and buf.data is not None and len(buf.data) >= 4:  # FLOAT32 constants
                n = len(buf.data) // 4
                buf.data = np.frombuffer(np.full(n, np.nan, np.float32).tobytes(), np.uint8).copy()
    return pack_model(model)
