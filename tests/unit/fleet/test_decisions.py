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


FINE = [round(0.1 * i, 1) for i in range(1, 60)]  # 0.1 ms bins up to 5.9 ms


def latency_arm(rng, ms: float, n: int = 5000) -> ArmStats:
    conf = np.histogram(rng.beta(8, 2, n), bins=20, range=(0, 1))[0].tolist()
    lat = np.histogram(rng.normal(ms, 0.1 * ms, n), bins=[0, *FINE, np.inf])[0].tolist()
    return ArmStats(n, 0, 0, 20, conf, lat, FINE)


def test_sub_millisecond_latency_noise_does_not_halt(rng):
    """Issue 22 (6): p95 2.1 vs 1.7 ms is 1.2x, but 0.4 ms: below the default 0.5 ms floor."""
    control, candidate = latency_arm(rng, 1.45), latency_arm(rng, 1.78)
    v = decide(control, candidate, stage_index=0, n_stages=3)
    assert v.numbers["latency_p95_ratio"] > 1.2 and v.numbers["checks"]["latency_p95"] == "ok", v.numbers
    halted = decide(control, candidate, stage_index=0, n_stages=3, thresholds={"latency_p95_floor_ms": 0.1})
    assert halted.action == "halt" and "floor 0.1 ms" in halted.reasons[0], halted.reasons
    slow = decide(control, latency_arm(rng, 3.0), stage_index=0, n_stages=3)  # 2x and +1.5 ms: halts
    assert slow.action == "halt" and "latency p95" in slow.reasons[0]


def test_latency_is_compared_on_the_periods_both_arms_reported(rng):
    """Issue 22 (6): at 100 % the control's windows come from earlier, quieter periods; paired, the
    same busy period slows both arms and an identical candidate holds."""
    from liteship.fleet.aggregate import arm_stats, paired_latency
    from liteship.fleet.models import TelemetryWindow

    def window(device: str, ended: float, ms: float) -> TelemetryWindow:
        lat = np.histogram(rng.normal(ms, 0.05 * ms, 400), bins=[0, *FINE, np.inf])[0].tolist()
        conf = [0] * 16 + [400, 0, 0, 0]
        return TelemetryWindow(
            device_id=device, window_id=f"{device}-{ended}", model_id="m", model_version="1", started=ended - 60,
            ended=ended, inferences=400, errors=0, rollbacks=0, out_of_range_fraction=0.0,
            confidence_hist=conf, latency_hist=lat, latency_edges_ms=FINE, dropped_windows=0,
        )  # fmt: skip

    quiet, busy = 1_000_000.0, 1_000_900.0  # two 300 s periods
    control = [window(f"c{i}", quiet + 10 * i, 1.0) for i in range(25)]
    control += [window("c0", busy, 2.0)]  # the last control device, in the busy period
    candidate = [window(f"k{i}", busy + 10 * i, 2.0) for i in range(5)]  # identical model, busy machine
    unpaired = decide(arm_stats(control), arm_stats(candidate), stage_index=2, n_stages=3)
    assert unpaired.numbers["checks"]["latency_p95"] == "worse"  # what happened before
    ctrl, cand, periods = paired_latency(control, candidate, period_s=300)
    assert periods == 1
    base = arm_stats(control), arm_stats(candidate)
    base[0].latency_hist, base[1].latency_hist = ctrl.latency_hist, cand.latency_hist
    paired = decide(*base, stage_index=2, n_stages=3, thresholds={"min_devices": 1, "min_predictions": 1})
    assert paired.numbers["checks"]["latency_p95"] == "ok" and paired.action == "promote", paired.reasons
