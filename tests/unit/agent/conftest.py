"""Fixtures for the agent tests: signing keys, packages of the digits model, broken candidates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("agent_test_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
sys.modules["agent_test_helpers"] = helpers
_spec.loader.exec_module(helpers)


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    from liteship.package import generate_keypair

    return generate_keypair(tmp_path_factory.mktemp("keys") / "publisher.key")


@pytest.fixture(scope="session")
def golden(digits):
    return digits[2][:4]


@pytest.fixture(scope="session")
def packages(tflite_float, keys, golden, digits, tmp_path_factory):
    """``{name: .lsp path}``: good 1.0.0 / 1.1.0 / 1.2.0, a NaN 1.3.0, a health-window failure 2.0.0."""
    out = tmp_path_factory.mktemp("lsp")
    good = tflite_float.read_bytes()
    pkgs = {v: helpers.build(good, out, v, keys.private_path, golden) for v in ("1.0.0", "1.1.0", "1.2.0")}
    from liteship.runtime import LiteRTRunner

    with LiteRTRunner(good, num_threads=1) as r:
        expected = {s.name: r.infer({helpers.INPUT: golden})[s.name] for s in r.output_specs}
    pkgs["nan"] = helpers.build(
        helpers.scale_weights(good, float("nan")),
        out,
        "1.3.0",
        keys.private_path,
        golden,
        golden_outputs=expected,
    )
    frames = digits[2][:40] * 255.0
    pkgs["blowup"] = helpers.build(
        helpers.blowup_model(good, golden, frames), out, "2.0.0", keys.private_path, golden
    )
    return pkgs


@pytest.fixture(scope="session")
def digit_pngs(digits, tmp_path_factory):
    return helpers.write_digit_pngs(digits[2][:40], tmp_path_factory.mktemp("frames"))
