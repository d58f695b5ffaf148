"""A variant's recipe and fixes as a typed VariantSpec; the gates as a frozen Gates with check()."""

from __future__ import annotations

import dataclasses

import pytest

from liteship.pipeline.config import load_config
from liteship.pipeline.gates import Candidate, Gates
from liteship.pipeline.spec import FLOAT_IO, VariantSpec

BASE = {"source": "m.keras", "model_id": "m", "calibration": {"data": "c"}, "validation": {"data": "v"}}


def test_the_configured_spec_carries_io_type_range_setting_and_fixes_of_integer_recipes_only():
    cfg = load_config(
        {
            **BASE,
            "io_type": "uint8",
            "graph_fixes": {"equalize": True, "range_setting": "mse", "absorb_high_bias": True},
        }
    )
    int8 = VariantSpec.configured("int8", cfg)
    assert int8 == VariantSpec(
        "int8", io_type="uint8", range_setting="mse", equalize=True, absorb_high_bias=True
    )
    assert int8.fixes == ("range_mse", "equalize", "absorb_high_bias")
    assert int8.fix_options()["io_type"] == "uint8" and int8.rewrites_weights
    int16 = VariantSpec.configured("int16x8", cfg)  # no int8 activation ranges to narrow or shift
    assert int16.range_setting == "minmax" and not int16.absorb_high_bias and int16.equalize
    assert VariantSpec.configured("float16", cfg) == VariantSpec("float16")
    assert VariantSpec("float16", io_type="uint8").fix_options()["io_type"] is None


def test_float_io_overrides_the_configured_io_type_and_names_itself_first():
    spec = VariantSpec("int8", io_type="int8").with_fixes([FLOAT_IO, "range_percentile"])
    assert spec.model_io_type == "float32" and spec.fix_options()["io_type"] == "float32"
    assert spec.fixes == (FLOAT_IO, "range_percentile") and not spec.rewrites_weights
    assert spec.with_fix("range_percentile", on=False).range_setting == "minmax"
    with pytest.raises(ValueError, match="unknown fix 'range_kl'"):
        spec.with_fix("range_kl")


def test_gates_check_lists_every_failing_gate_and_accuracy_keeps_only_the_repairable_ones():
    gates = Gates(
        max_accuracy_drop=1.0, min_agreement=0.98, max_latency_ms=1.0, min_accuracy=0.9, min_sqnr=20
    )
    slow = Candidate(
        "int8", size_bytes=10, p50_ms=2.0, accuracy_drop=2.0, agreement=0.9, accuracy=0.5, sqnr_db=10
    )
    verdict = gates.check(slow)
    assert not verdict.passed and len(verdict.failures) == 5
    assert gates.accuracy() == Gates(max_accuracy_drop=1.0, min_agreement=0.98, min_sqnr=20)
    assert len(gates.accuracy().check(slow).failures) == 3
    assert Gates.from_dict({**gates.to_dict(), "unknown": 1}) == gates
    with pytest.raises(dataclasses.FrozenInstanceError):
        gates.min_sqnr = 0  # type: ignore[misc]
