"""Decision engine on synthetic histograms: each check must fire on a worse candidate and hold on an equal one."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.fleet.decisions import ArmStats, decide, histogram_quantile, mann_whitney_binned

EDGES = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


def arm(rng, n=5000, a=8.0, b=2.0, devices=20, errors=0, rollbacks=0, latency_ms=3.0) -> ArmStats:
    conf = np.histogram(rng.beta(a, b, n), bins=20, range=(0, 1))[0].tolist()
    lat = np.histogram(rng.gamma(9, latency_ms / 9, n), bins=[0, *EDGES, np.inf])[0].tolist()
    return ArmStats(n, errors, rollbacks, devices, conf, lat, EDGES)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_mann_whitney_matches_scipy(rng):
    stats = pytest.importorskip("scipy.stats")
    ctrl, cand = rng.integers(0, 20, 400), rng.integers(0, 18, 300)
    hc, hk = np.bincount(ctrl, minlength=20).tolist(), np.bincount(cand, minlength=20).tolist()
    u, p, delta = mann_whitney_binned(hc, hk)
    ref = stats.mannwhitneyu(cand, ctrl, alternative="less", method="asymptotic", use_continuity=True)
    assert u == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue, rel=1e-6)
    assert -1 <= delta < 0


def test_equal_candidate_advances_and_promotes(rng):
    v = decide(arm(rng), arm(rng), stage_index=0, n_stages=3)
    assert v.action == "advance", v.reasons
    assert set(v.numbers["checks"].values()) == {"ok"}
    assert decide(arm(rng), arm(rng), stage_index=2, n_stages=3).action == "promote"


def test_lower_confidence_halts(rng):
    v = decide(arm(rng), arm(rng, a=4, b=2), stage_index=0, n_stages=3)
    assert v.action == "halt"
    assert v.numbers["checks"]["confidence"] == "worse" and v.numbers["p_value"] < 0.01


def test_effect_size_floor_ignores_tiny_significant_shift(rng):
    # a huge sample makes a tiny shift significant; the effect-size floor keeps the rollout going
    ctrl, cand = arm(rng, n=400_000), arm(rng, n=400_000, a=7.8, b=2)
    v = decide(ctrl, cand, stage_index=0, n_stages=3)
    assert v.numbers["p_value"] < 0.01 and v.numbers["cliffs_delta"] > -0.1
    assert v.numbers["checks"]["confidence"] == "ok"


def test_higher_confidence_shift_is_flagged_by_psi_only(rng):
    v = decide(arm(rng, a=3, b=2), arm(rng, a=12, b=1), stage_index=0, n_stages=3)
    assert v.numbers["checks"]["confidence"] == "ok"  # one-sided: more confident is not worse
    assert v.numbers["checks"]["psi"] == "worse" and v.action == "halt"


def test_latency_error_rollback_checks(rng):
    assert (
        decide(arm(rng), arm(rng, latency_ms=6), stage_index=0, n_stages=2).numbers["checks"]["latency_p95"]
        == "worse"
    )
    assert (
        decide(arm(rng), arm(rng, latency_ms=3.1), stage_index=0, n_stages=2).numbers["checks"]["latency_p95"]
        == "ok"
    )
    v = decide(arm(rng, errors=5), arm(rng, errors=200), stage_index=0, n_stages=2)
    assert v.numbers["checks"]["error_rate"] == "worse" and v.action == "halt"
    v = decide(arm(rng), arm(rng, rollbacks=3), stage_index=0, n_stages=2)
    assert v.numbers["checks"]["rollback_rate"] == "worse"


def test_minimum_sample(rng):
    assert decide(arm(rng, n=499), arm(rng), stage_index=0, n_stages=3).action == "wait"
    v = decide(arm(rng), arm(rng, devices=9, a=1, b=5), stage_index=0, n_stages=3)
    assert v.action == "wait" and "candidate has" in v.reasons[0]
    assert (
        decide(arm(rng, n=500, devices=10), arm(rng, n=500, devices=10), stage_index=0, n_stages=3).action
        != "wait"
    )


def test_histogram_quantile():
    assert histogram_quantile([0, 10], [1.0], 0.5) == pytest.approx(1.5)
    assert histogram_quantile([10, 0, 0], [2.0, 4.0], 0.95) == pytest.approx(1.9)
    assert histogram_quantile([0, 0, 0], [2.0, 4.0], 0.95) is None
