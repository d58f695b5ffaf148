"""The one confidence rule (liteship.confidence) on values whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liteship import confidence
from liteship.agent import telemetry


def test_probability_rows_keep_their_top_value_and_logit_rows_go_through_softmax():
    rows = np.array([[0.2, 0.8], [2.0, 0.0], [0.5, np.nan], [-1.0, 1.0]])
    assert confidence.probability_rows(rows).tolist() == [True, False, False, False]
    c = confidence.top1_confidence(rows)
    assert c[0] == 0.8 and c[1] == pytest.approx(1 / (1 + math.exp(-2))) and math.isnan(c[2])
    assert c[3] == pytest.approx(1 / (1 + math.exp(-2)))
    # per row: a single vector gets the number its row gets in a batch
    assert [float(confidence.top1_confidence(r)[0]) for r in rows[[0, 1, 3]]] == c[[0, 1, 3]].tolist()


def test_bins_close_the_last_one_and_put_nan_first():
    assert confidence.confidence_bins([0.0, 0.049, 0.05, 0.999, 1.0, 7.0, -1.0, np.nan]).tolist() == [
        0, 0, 1, 19, 19, 19, 0, 0,
    ]  # fmt: skip
    assert confidence.bin_edges(4) == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert confidence.confidence_counts([0.1, 0.9, 0.95], bins=2) == (1, 2)
    assert telemetry.confidence_bin is confidence.confidence_bin and telemetry.CONFIDENCE_BINS == 20


def test_a_scalar_is_not_a_score_vector():
    with pytest.raises(ValueError, match="vector"):
        confidence.top1_confidence(0.5)


def test_the_models_kind_overrides_the_per_row_guess():
    rows = np.array([[0.3, 0.7], [2.0, 0.0], [np.nan, 0.1]])
    logits = confidence.top1_confidence(rows, "logits")
    assert logits[0] == pytest.approx(1 / (1 + math.exp(-0.4)))  # in [0, 1], still softmax
    assert logits[1] == pytest.approx(1 / (1 + math.exp(-2))) and math.isnan(logits[2])
    probs = confidence.top1_confidence(rows, "probabilities")
    assert probs[0] == 0.7 and probs[1] == 2.0 and math.isnan(probs[2])  # 2.0 bins as the last bin
    assert confidence.top1_confidence(rows[0], None)[0] == 0.7
    with pytest.raises(ValueError, match="kind must be"):
        confidence.top1_confidence(rows, "softmax")
