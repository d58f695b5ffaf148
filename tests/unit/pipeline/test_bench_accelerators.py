"""liteship.yaml `bench.accelerators` (issue 15): parsed, normalized, and refused with a clear message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from liteship.pipeline.config import BenchConfig


def test_accelerators_default_to_the_interpreter_and_normalize():
    assert BenchConfig().accelerators == [None]
    got = BenchConfig(accelerators=["interpreter", "cpu,gpu", "gpu,cpu", "auto", None]).accelerators
    assert got == [None, "gpu,cpu", "auto"]


def test_unknown_accelerator_is_refused():
    with pytest.raises(ValidationError, match="unknown: tpu"):
        BenchConfig(accelerators=["tpu"])


@pytest.mark.parametrize(
    ("field", "value"), [("runs", 10**400), ("warmup", 10**9), ("min_seconds", float("inf"))]
)
def test_bench_settings_are_bounded(field, value):
    """Issue 21 item 13: ``bench.runs: 10**400`` in liteship.yaml used to run without bound."""
    with pytest.raises(ValidationError, match=field):
        BenchConfig(**{field: value})
