"""The search's score is the tightest gate margin, so it works on the gate that fails (issue 9)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from liteship.pipeline.accuracy_repair import gate_metric
from liteship.pipeline.config import GatesConfig


def _run(**gates):
    return SimpleNamespace(cfg=SimpleNamespace(gates=GatesConfig(**gates)))


def test_the_failing_gate_is_the_score():
    # MobileNetV2's case: the accuracy drop is inside its gate, the agreement is not.
    run = _run(max_accuracy_drop=1.0, min_agreement=0.98)
    metric, score = gate_metric(run, {"accuracy_drop": 0.2, "agreement_top1": 0.966, "sqnr_db": 20.0})
    assert metric == "agreement" and score < 0
    # Better agreement raises the score even though the accuracy drop did not change.
    _, better = gate_metric(run, {"accuracy_drop": 0.2, "agreement_top1": 0.975, "sqnr_db": 20.0})
    assert better > score


def test_zero_is_the_threshold_and_passing_is_positive():
    run = _run(max_accuracy_drop=1.0, min_agreement=0.98)
    assert gate_metric(run, {"accuracy_drop": 1.0, "agreement_top1": 0.99})[1] == pytest.approx(0.0)
    assert gate_metric(run, {"accuracy_drop": 0.5, "agreement_top1": 0.995})[1] > 0


def test_sqnr_without_accuracy_gates():
    run = _run(max_accuracy_drop=None, min_agreement=None)
    assert gate_metric(run, {"accuracy_drop": None, "agreement_top1": None, "sqnr_db": 31.5}) == (
        "sqnr_db",
        31.5,
    )
    run = _run(max_accuracy_drop=None, min_agreement=None, min_sqnr=30.0)
    metric, score = gate_metric(run, {"sqnr_db": 27.0})
    assert metric == "sqnr_db" and score == pytest.approx(-0.1)
