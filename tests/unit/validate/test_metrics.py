"""The comparison arithmetic, on arrays whose answers are known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from liteship.validate import metrics
from liteship.validate.report import GateResult


def test_error_statistics_on_known_values():
    ref = np.array([[1.0, 2.0], [3.0, 4.0]])
    cand = ref + np.array([[0.0, 0.5], [-1.0, 0.0]])
    s = metrics.output_stats("c", "r", cand, ref)
    assert (s.name, s.reference_name, s.shape) == ("c", "r", (2, 2))
    assert s.max_abs_error == 1.0 and s.mean_abs_error == pytest.approx(0.375)
    assert s.max_rel_error == pytest.approx(1 / 3) and s.mean_rel_error == pytest.approx((0.25 + 1 / 3) / 4)
    assert s.sqnr_db == pytest.approx(10 * math.log10(30 / 1.25))
    assert s.p50_abs_error == pytest.approx(0.25) and s.p99_abs_error <= s.max_abs_error
    dot = float(np.sum(cand * ref))
    assert s.cosine_similarity == pytest.approx(dot / np.linalg.norm(cand) / np.linalg.norm(ref))
    assert not s.identical


def test_identical_outputs_have_infinite_sqnr_and_json_null():
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    s = metrics.output_stats("y", "y", x, x.copy())
    assert s.identical and s.sqnr_db == math.inf and s.max_abs_error == 0.0 and s.cosine_similarity == 1.0
    assert json.loads(json.dumps(s.to_dict()))["sqnr_db"] is None


def test_nan_and_inf_are_counted_and_left_out_of_errors():
    ref = np.array([1.0, 2.0, 3.0, np.inf])
    cand = np.array([1.0, np.nan, 3.5, np.inf])
    s = metrics.output_stats("y", "y", cand, ref)
    assert (s.candidate_nan, s.candidate_inf, s.reference_nan, s.reference_inf) == (1, 1, 0, 1)
    assert s.max_abs_error == 0.5
    assert metrics.allclose_excess(cand, ref, rtol=0) == math.inf  # NaN where the reference has 2.0


def test_allclose_excess_is_compared_with_atol():
    ref = np.array([1.0, 10.0])
    cand = np.array([1.05, 10.5])
    assert metrics.allclose_excess(cand, ref, rtol=0.0) == pytest.approx(0.5)
    assert metrics.allclose_excess(cand, ref, rtol=0.05) == pytest.approx(0.0)
    assert metrics.allclose_excess(cand, ref, rtol=0.01) == pytest.approx(0.4)
    assert np.allclose(cand, ref, rtol=0.01, atol=0.4) and not np.allclose(cand, ref, rtol=0.01, atol=0.39)


def test_agreement_uses_first_maximum_and_top5_and_accuracy():
    ref = np.array([[0.1, 0.9, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    cand = np.array([[0.2, 0.8, 0.0], [0.5, 0.5, 0.0], [0.5, 0.3, 0.2], [0.1, 0.3, 0.6]])
    labels = np.array([1, 0, 2, 2])
    a = metrics.agreement("p", cand, ref, labels)
    assert a.classes == 3 and a.top1 == 0.5  # rows 0 and 1 agree (row 1: tie → class 0 in both)
    assert a.top5 == 1.0  # k = min(5, 3): every class is in the candidate's top-3
    assert a.reference_accuracy == 0.75 and a.candidate_accuracy == 0.75 and a.accuracy_drop == 0.0
    many = np.eye(10)[[0, 1]]
    shifted = np.roll(many, 1, axis=1)
    assert metrics.agreement("p", shifted, many, None).top1 == 0.0
    assert metrics.agreement("p", shifted, many, None).accuracy_drop is None


def test_top5_counts_the_reference_class_among_the_candidates_five_best():
    ref = np.zeros((1, 10))
    ref[0, 7] = 1.0
    cand = np.arange(10, dtype=float)[None] / 45  # ranks 9, 8, 7, 6, 5 first
    assert metrics.agreement("p", cand, ref, None).top5 == 1.0
    ref2 = np.zeros((1, 10))
    ref2[0, 2] = 1.0
    assert metrics.agreement("p", cand, ref2, None).top5 == 0.0


def test_confidence_histogram_of_probabilities_and_of_logits():
    probs = np.array([[0.96, 0.04], [0.5, 0.5], [0.28, 0.72]])
    h = metrics.confidence_histogram("p", probs, bins=20)
    assert len(h.bins) == 21 and h.bins[0] == 0.0 and h.bins[-1] == 1.0 and sum(h.counts) == 3
    assert h.counts[19] == 1 and h.counts[10] == 1 and h.counts[14] == 1 and not h.softmax_applied
    logits = np.log(probs)  # softmax(log p) == p
    h2 = metrics.confidence_histogram("p", logits * 1.0 + 0.0, bins=20)
    assert h2.softmax_applied and h2.counts == h.counts
    dequantized = np.clip(np.floor(probs * 256) / 256 - 1 / 256, 0, 1)  # rows sum to ~0.99, not 1
    h3 = metrics.confidence_histogram("p", dequantized, bins=20)
    assert not h3.softmax_applied and h3.counts[19] == 1 and sum(h3.counts) == 3


def test_classifier_detection():
    assert metrics.is_classifier(np.zeros((4, 10)))
    assert not metrics.is_classifier(np.zeros((4, 1)))
    assert not metrics.is_classifier(np.zeros((4, 8, 8, 3)))


def test_gate_describes_value_and_threshold():
    g = GateResult("min_agreement", "probs", 0.9, 0.99, False)
    assert g.describe() == "output 'probs': top-1 agreement 0.9 < min_agreement 0.99"
    assert "≤ max_accuracy_drop 1" in GateResult("max_accuracy_drop", "probs", 0.5, 1.0, True).describe()


def test_cosine_of_parallel_outputs_is_clamped_to_one():
    x = np.linspace(-1, 1, 1000) + 1e-3  # not identical, so the dot/norm path runs
    for scale in (3.0, 1.0 + 1e-12, 7.1):
        s = metrics.output_stats("y", "y", x * scale, x)
        assert not s.identical and -1.0 <= s.cosine_similarity <= 1.0
        assert s.cosine_similarity == pytest.approx(1.0)
