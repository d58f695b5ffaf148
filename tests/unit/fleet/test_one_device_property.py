"""Issue 21, property: on arms of ≥ 3 honest devices whose windows say ``halt``, no set of windows and
revert events from one other device turns the verdict into ``advance`` (or ``promote``).

The windows go through the server's own aggregation (schema re-check, per-device weights, latency
rebinning: :func:`liteship.fleet.aggregate.arm_parts`) and :func:`liteship.fleet.robust.decide_robust`,
the functions the rollout engine calls on what it reads from the database.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from liteship.fleet.aggregate import arm_parts
from liteship.fleet.models import Revert, TelemetryWindow
from liteship.fleet.robust import decide_robust

NOW = time.time()
EDGES = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
THRESHOLDS = {"min_devices": 3, "min_predictions": 300}


def window(
    device: str, version: str, conf: list[int], latency: list[int], edges: list[float], **kw
) -> TelemetryWindow:
    n = kw.pop("inferences", max(sum(conf), sum(latency)))
    return TelemetryWindow(
        device_id=device, window_id=f"{device}-{len(conf)}", model_id="m", model_version=version,
        started=kw.pop("started", NOW - 60), ended=kw.pop("ended", NOW), inferences=n, errors=kw.pop("errors", 0),
        rollbacks=kw.pop("rollbacks", 0), out_of_range_fraction=0.0, confidence_hist=conf,
        latency_hist=latency, latency_edges_ms=edges, dropped_windows=0, assigned=True,
    )  # fmt: skip


def honest_window(device: str, version: str, n: int, conf_bin: int, lat_bin: int) -> TelemetryWindow:
    conf, latency = [0] * 20, [0] * (len(EDGES) + 1)
    conf[conf_bin], conf[min(conf_bin + 1, 19)] = n - n // 3, n // 3
    latency[lat_bin] = n
    return window(device, version, conf, latency, EDGES)


@st.composite
def honest_arms(draw):
    """3-5 devices per arm, one window each; the candidate worse in confidence or in latency."""
    ctrl_conf, ctrl_lat = draw(st.integers(10, 18)), draw(st.integers(1, 4))
    cand_conf, cand_lat = ctrl_conf, ctrl_lat
    if draw(st.booleans()):
        cand_conf -= draw(st.integers(3, 8))
    else:
        cand_lat += draw(st.integers(2, 3))
    arms = {}
    for arm, version, conf, lat in (
        ("control", "1", ctrl_conf, ctrl_lat),
        ("candidate", "2", cand_conf, cand_lat),
    ):
        k = draw(st.integers(3, 5))
        arms[arm] = [
            honest_window(f"{arm}-{i}", version, draw(st.integers(100, 400)), conf, lat) for i in range(k)
        ]
    return arms, (ctrl_conf, ctrl_lat)


@st.composite
def attacker(draw, control_shape: tuple[int, int]):
    """One device's windows (anything the schema admits, and more) and revert events, on either arm:
    shaped like an honest window of any confidence and latency (often the control's, or the opposite
    extreme: what moves a verdict most), of any size and length."""
    arm = draw(st.sampled_from(["control", "candidate"]))
    version = "1" if arm == "control" else "2"
    windows = []
    for i in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 10**9))
        conf = [0] * 20
        b = draw(st.one_of(st.just(control_shape[0]), st.sampled_from([0, 18]), st.integers(0, 18)))
        conf[b], conf[b + 1] = n - n // 3, n // 3
        edges = draw(
            st.one_of(
                st.just(EDGES),
                st.lists(st.floats(0.01, 1e4), min_size=1, max_size=6, unique=True).map(sorted),
            )
        )
        latency = [0] * (len(edges) + 1)
        lat = draw(st.one_of(st.just(control_shape[1]), st.just(0), st.integers(0, len(edges))))
        latency[min(lat, len(edges))] = n
        span = draw(st.floats(1.0, 7 * 86400.0))
        windows.append(window(
            f"attacker-{i}", version, conf, latency, edges, started=NOW - span, ended=NOW,
            errors=draw(st.integers(0, 10)), rollbacks=draw(st.integers(0, 1)),
        ))  # fmt: skip
    for w in windows:
        w.device_id = "attacker"
    reverts = [
        Revert(device_id="attacker", model_id="m", version=version, reason="x", by_server=False, at=NOW)
        for _ in range(draw(st.integers(0, 2)))
    ]
    return arm, windows, reverts


def verdict(control: list, candidate: list, reverts: dict[str, list] | None = None) -> str:
    reverts = reverts or {}
    ctrl, skipped_ctrl = arm_parts(control, reverts.get("control"))
    cand, skipped_cand = arm_parts(candidate, reverts.get("candidate"))
    v = decide_robust(
        ctrl, cand, skipped=(skipped_ctrl, skipped_cand), stage_index=0, n_stages=2, thresholds=THRESHOLDS
    )
    return v.action


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_one_device_cannot_turn_a_halt_into_an_advance(data):
    honest, control_shape = data.draw(honest_arms())
    attack = data.draw(attacker(control_shape))
    assume(verdict(honest["control"], honest["candidate"]) == "halt")
    arm, windows, reverts = attack
    arms = {name: list(ws) for name, ws in honest.items()}
    arms[arm] += windows
    assert verdict(arms["control"], arms["candidate"], {arm: reverts}) == "halt"
