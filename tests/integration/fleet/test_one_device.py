"""Issue 21: one enrolled device (a valid token, any JSON the schema admits) carries one device's weight.

Each test builds an honest rollout on the real app and database (both arms of ≥ 4 devices), lets one
device attack it the way the attack run on main did, and reads the engine's verdict (``next``: the
rollout is paused, so nothing is decided automatically while windows arrive).
"""

from __future__ import annotations

import itertools
import time

import pytest

EDGES = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
THRESHOLDS = {"min_devices": 4, "min_predictions": 400}
_ids = itertools.count()


def win(version: str, n: int, *, conf: range = range(15, 20), lat_bin: int = 3, **fields) -> dict:
    """A window of ``n`` inferences: confidence spread over the bins ``conf``, latency in one bin."""
    hist = [0] * 20
    for k, b in enumerate(conf):
        hist[b] = n // len(conf) + (k < n % len(conf))
    latency = [0] * (len(EDGES) + 1)
    latency[lat_bin] = n
    now = time.time()
    return {
        "window_id": f"w-{next(_ids)}-{time.time_ns()}",
        "model_id": "digits",
        "model_version": version,
        "started": now - 60,
        "ended": now,
        "inferences": n,
        "confidence_hist": hist,
        "latency_hist": latency,
        "latency_edges_ms": EDGES,
        **fields,
    }


@pytest.fixture
def world(fleet, make_package):
    """``(fleet, devices, arms, rid)``: 1.0.0 stable, 1.1.0 at 50 % with ≥ 4 devices on each arm, paused."""
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    assert fleet.publish(make_package("digits", "1.1.0")).status_code == 201
    devices = {f"od-{i}": fleet.register(f"od-{i}") for i in range(10)}
    r = fleet.rollout("1.1.0", stages=[50, 100], min_arm_devices=4, thresholds=THRESHOLDS)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    arms = {}
    for dev, headers in devices.items():
        a = fleet.checkin(dev, headers).json()
        assert fleet.checkin(dev, headers, a["version"]).status_code == 200
        arms[dev] = a["arm"]
    assert fleet.client.post(f"/api/v1/rollouts/{rid}/pause", headers=fleet.admin).status_code == 200
    return fleet, devices, arms, rid


def post(fleet, devices, dev, body) -> None:
    r = fleet.client.post(f"/api/v1/devices/{dev}/telemetry", json=body, headers=devices[dev])
    assert r.status_code == 201 and r.json()["counted"], r.text


def honest(fleet, devices, arms, *, candidate: dict, control: dict | None = None) -> None:
    """Every device posts two windows of 150 inferences of its arm's shape."""
    for dev, arm in arms.items():
        version, shape = ("1.1.0", candidate) if arm == "candidate" else ("1.0.0", control or {})
        for _ in range(2):
            post(fleet, devices, dev, win(version, 150, **shape))


def verdict(fleet, rid) -> dict:
    return fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).json()["next"]


def test_one_window_with_other_latency_edges_does_not_blind_the_latency_check(world):
    """Item 5: ``latency_edges_ms: [0.5]`` in one 10-inference window, posted first."""
    fleet, devices, arms, rid = world
    attacker = next(d for d, a in arms.items() if a == "candidate")
    blind = win("1.1.0", 10, latency_edges_ms=[0.5], latency_hist=[10, 0])
    post(fleet, devices, attacker, blind)
    honest(fleet, devices, arms, candidate={"lat_bin": 6})  # 4-10× slower than the control's bin 3
    v = verdict(fleet, rid)
    assert v["action"] == "halt", v
    assert v["numbers"]["checks"]["latency_p95"] == "worse"
    assert v["numbers"]["candidate"]["latency_p95_ms"] > 10


@pytest.mark.parametrize("arm", ["candidate", "control"])
def test_one_huge_long_window_does_not_outweigh_the_arm(world, arm):
    """Item 6: ``started = now - 6 d``, ``inferences = 10**9`` of high (or, on the control, low) confidence."""
    fleet, devices, arms, rid = world
    honest(fleet, devices, arms, candidate={"conf": range(5, 10), "lat_bin": 6})
    assert verdict(fleet, rid)["action"] == "halt"
    attacker = next(d for d, a in arms.items() if a == arm)
    now = time.time()
    version, conf = ("1.1.0", range(19, 20)) if arm == "candidate" else ("1.0.0", range(0, 1))
    post(fleet, devices, attacker, win(version, 10**9, conf=conf, started=now - 6 * 86400, ended=now))
    v = verdict(fleet, rid)
    assert v["action"] == "halt", v
    assert v["numbers"][arm]["predictions"] < 10_000  # the window counts for one plausible device


def test_a_control_device_cannot_report_reverts_of_the_candidate(world):
    """Item 7: a control device's ``reverted`` event for the candidate is refused and counted."""
    fleet, devices, arms, rid = world
    honest(fleet, devices, arms, candidate={})  # the same model: advance
    assert verdict(fleet, rid)["action"] == "advance"
    liars = [d for d, a in arms.items() if a == "control"][:2]
    for liar in liars:
        event = {"event": "reverted", "version": "1.1.0", "to": "1.0.0", "reason": "x", "at": time.time()}
        body = {"model_id": "digits", "model_version": "1.0.0", "health": {"events": [event]}}
        r = fleet.client.post(f"/api/v1/devices/{liar}/checkin", json=body, headers=devices[liar])
        assert r.status_code == 200, r.text
    v = verdict(fleet, rid)
    assert v["action"] == "advance", v
    assert v["numbers"]["candidate"]["rollbacks"] == 0
    assert fleet.client.get("/api/v1/reverts", headers=fleet.admin).json() == []
    rows = {d["id"]: d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json()}
    assert [rows[liar]["refused_reports"] for liar in liars] == [1, 1]


def test_a_device_cannot_move_itself_to_another_model(fleet, make_package):
    """Item 10: a check-in claiming another model id; then windows for that model."""
    assert fleet.publish(make_package("digits", "1.0.0"), channel="stable").status_code == 201
    assert fleet.publish(make_package("other", "1.0.0"), channel="stable").status_code == 201
    devices = {"mover": fleet.register("mover")}
    body = {"model_id": "other", "model_version": "1.0.0"}
    a = fleet.client.post("/api/v1/devices/mover/checkin", json=body, headers=devices["mover"]).json()
    assert a["model_id"] == "digits", a  # assigned by the model it enrolled for
    window = {**win("1.0.0", 50), "model_id": "other"}
    r = fleet.client.post("/api/v1/devices/mover/telemetry", json=window, headers=devices["mover"])
    assert r.status_code == 409, r.text
    assert "enrolled for model 'digits'" in r.json()["detail"]
    row = next(
        d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json() if d["id"] == "mover"
    )
    assert (row["model_id"], row["refused_reports"]) == ("digits", 2)
    drift = fleet.client.get("/api/v1/drift", params={"model_id": "other"}, headers=fleet.admin).json()
    assert drift[0]["windows"] == 0
