"""Rollouts end to end: stable hashing into arms, staged advance on telemetry, automatic halt of a worse
candidate (and its devices back on control), promotion, pause/resume/abort; every decision recorded."""

from __future__ import annotations

import itertools
import re
import time

import numpy as np
import pytest

from liteship.fleet.crud import device_bucket

_ids = itertools.count()


def conf_hist(rng: np.random.Generator, n: int, a: float, b: float) -> list[int]:
    """Top-1 confidences ~ Beta(a, b), binned into the agent's 20 fixed bins."""
    values = rng.beta(a, b, size=n)
    return np.histogram(values, bins=20, range=(0.0, 1.0))[0].astype(int).tolist()


def window(version: str, hist: list[int], *, errors: int = 0, latency_bin: int = 3) -> dict:
    latency = [0] * 12
    latency[latency_bin] = sum(hist)
    return {
        "window_id": f"w-{next(_ids)}-{time.time_ns()}",
        "model_id": "digits",
        "model_version": version,
        "started": time.time() - 60,
        "ended": time.time(),
        "inferences": sum(hist),
        "errors": errors,
        "confidence_hist": hist,
        "latency_hist": latency,
        "latency_edges_ms": [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    }


@pytest.fixture
def fleet40(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    assert fleet.publish(make_package("digits", "1.1.0")).status_code == 201
    devices = {f"pi-{i:03d}": fleet.register(f"pi-{i:03d}") for i in range(40)}
    return fleet, devices


def report_all(fleet, devices, rng, *, candidate=(8, 2), control=(8, 2), errors=0) -> dict[str, str]:
    """Every device checks in (running what it was told), then posts one window for that version."""
    versions = {}
    for dev, headers in devices.items():
        a = fleet.checkin(dev, headers).json()
        version = a["version"]
        fleet.checkin(dev, headers, version)
        shape = candidate if a["arm"] == "candidate" else control
        hist = conf_hist(rng, 60, *shape)
        r = fleet.client.post(
            f"/api/v1/devices/{dev}/telemetry",
            json=window(version, hist, errors=errors if a["arm"] == "candidate" else 0),
            headers=headers,
        )
        assert r.status_code == 201, r.text
        versions[dev] = version
    return versions


def rollout_state(fleet, rid):
    return fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).json()


def test_assignment_follows_stable_hash(fleet40):
    fleet, devices = fleet40
    rid = fleet.rollout("1.1.0", stages=[25, 100]).json()["id"]
    for dev, headers in devices.items():
        a = fleet.checkin(dev, headers).json()
        expected = "candidate" if device_bucket(dev) < 2500 else "control"
        assert (a["arm"], a["version"], a["rollout_id"]) == (
            expected,
            "1.1.0" if expected == "candidate" else "1.0.0",
            rid,
        )
        assert a["target_path"] == f"digits/{a['version']}/digits-{a['version']}.lsp"
    assert fleet.client.get("/api/v1/devices/pi-000/assignment", headers=devices["pi-000"]).json()["arm"] in (
        "candidate",
        "control",
    )


def test_good_candidate_advances_then_promotes(fleet40):
    fleet, devices = fleet40
    rng = np.random.default_rng(1)
    rid = fleet.rollout("1.1.0", stages=[25, 60, 100]).json()["id"]
    seen_stages = []
    for _ in range(6):  # each round: every device checks in and reports one window
        r = rollout_state(fleet, rid)
        if r["state"] != "running":
            break
        seen_stages.append(r["stage_index"])
        report_all(fleet, devices, rng)
    assert seen_stages[0] == 0 and sorted(seen_stages) == seen_stages
    r = rollout_state(fleet, rid)
    assert r["state"] == "promoted", r["decisions"]
    actions = [d["action"] for d in r["decisions"] if d["action"] != "wait"]
    assert actions == ["advance", "advance", "promote"]
    moves = [d for d in r["decisions"] if d["action"] != "wait"]
    assert all(d["by"] == "engine" and "p_value" in d["numbers"] and "psi" in d["numbers"] for d in moves)
    # automatic waits are stored too (issue 11): the first of each stage, with what it waits for
    waits = [d for d in r["decisions"] if d["action"] == "wait"]
    assert {d["stage_index"] for d in waits} == {0, 1, 2}
    assert all(d["by"] == "engine" and d["numbers"]["waiting_for"] and d["reasons"] for d in waits)
    # not one per telemetry window: 40 devices post per round, a handful of waits are stored
    assert len(waits) < 3 * 5
    models = fleet.client.get("/api/v1/models", headers=fleet.admin).json()
    assert models[0]["channels"]["stable"] == "1.1.0"
    assert {fleet.checkin(d, h).json()["version"] for d, h in devices.items()} == {"1.1.0"}


def test_worse_candidate_is_halted_and_rolled_back(fleet40):
    fleet, devices = fleet40
    rng = np.random.default_rng(2)
    rid = fleet.rollout("1.1.0", stages=[25, 100]).json()["id"]
    versions = report_all(fleet, devices, rng, candidate=(3, 2))  # less confident than Beta(8, 2)
    r = rollout_state(fleet, rid)
    assert r["state"] == "halted"
    halt = r["decisions"][-1]
    assert halt["action"] == "halt" and halt["by"] == "engine"
    assert halt["numbers"]["checks"]["confidence"] == "worse" and halt["numbers"]["cliffs_delta"] < -0.1
    assert any("confidence" in reason for reason in halt["reasons"])
    # every device, including those that were candidates, is told to run the control again; a device
    # still on the candidate is told explicitly that this downgrade is a rollback it may install
    for dev, headers in devices.items():
        a = fleet.checkin(dev, headers, versions[dev]).json()
        assert a["version"] == "1.0.0"
        if versions[dev] == "1.1.0":
            assert (a["reason_code"], a["allow_downgrade_to"], a["rollout_id"]) == (
                "rollback-to-control",
                "1.0.0",
                rid,
            ), a
        else:
            assert (a["reason_code"], a["allow_downgrade_to"]) == ("stable", None), a
    assert "1.1.0" in versions.values()


def test_error_rate_halts(fleet40):
    fleet, devices = fleet40
    rid = fleet.rollout("1.1.0", stages=[25, 100]).json()["id"]
    report_all(fleet, devices, np.random.default_rng(3), errors=10)
    r = rollout_state(fleet, rid)
    assert r["state"] == "halted" and r["decisions"][-1]["numbers"]["checks"]["error_rate"] == "worse"


def test_too_little_data_waits(fleet40):
    fleet, devices = fleet40
    rid = fleet.rollout("1.1.0", stages=[2, 100]).json()["id"]  # 2 %: under 2 candidate devices of 40
    report_all(fleet, devices, np.random.default_rng(4), candidate=(3, 2))
    r = fleet.client.post(f"/api/v1/rollouts/{rid}/evaluate", headers=fleet.admin).json()
    assert r["state"] == "running" and r["decisions"][-1]["action"] == "wait"
    assert "need ≥ 200 predictions and ≥ 2 devices per arm" in r["decisions"][-1]["reasons"][0]


def test_pause_resume_abort_promote(fleet40):
    fleet, devices = fleet40
    rid = fleet.rollout("1.1.0", stages=[25, 100]).json()["id"]
    post = lambda action: fleet.client.post(f"/api/v1/rollouts/{rid}/{action}", headers=fleet.admin)  # noqa: E731
    assert post("pause").json()["state"] == "paused"
    report_all(fleet, devices, np.random.default_rng(5), candidate=(3, 2))  # paused: the engine holds off
    assert rollout_state(fleet, rid)["state"] == "paused"
    assert post("pause").status_code == 409
    assert post("resume").json()["state"] == "running"
    assert post("abort").json()["state"] == "aborted"
    assert {fleet.checkin(d, h).json()["version"] for d, h in devices.items()} == {"1.0.0"}
    r = post("promote")
    assert r.status_code == 409 and "it is aborted" in r.json()["detail"]
    # a new rollout may start after the abort, and a manual promote moves stable
    rid = fleet.rollout("1.1.0").json()["id"]
    assert rollout_state(fleet, rid)["stages"] == [2, 15, 100]
    assert post("promote").json()["state"] == "promoted"
    assert {fleet.checkin(d, h).json()["version"] for d, h in devices.items()} == {"1.1.0"}


def test_rollout_input_errors(fleet40):
    fleet, _ = fleet40
    assert fleet.rollout("9.9.9").status_code == 404
    assert fleet.rollout("1.0.0").status_code == 409  # the candidate is the control
    assert fleet.rollout("1.1.0", stages=[50, 20, 100]).status_code == 400
    assert fleet.rollout("1.1.0", stages=[10, 50]).status_code == 400
    assert fleet.rollout("1.1.0", thresholds={"bogus": 1}).status_code == 400
    assert (
        fleet.client.post(
            "/api/v1/rollouts", json={"model_id": "nope", "candidate_version": "1.0.0"}, headers=fleet.admin
        ).status_code
        == 404
    )
    assert fleet.client.get("/api/v1/rollouts/999", headers=fleet.admin).status_code == 404
    assert fleet.client.get("/api/v1/rollouts", headers=fleet.admin).json() == []
    assert fleet.rollout("1.1.0").status_code == 201
    assert fleet.rollout("1.1.0").status_code == 409  # one active rollout per model


def test_revert_events_are_stored_counted_and_shown(fleet40):
    """A device's revert (reported in its check-in health) is a row, halts a rollout on the rollback
    rate although telemetry reports no rollbacks, and is listed by the API and the dashboard."""
    fleet, devices = fleet40
    rid = fleet.rollout("1.1.0", stages=[25, 100]).json()["id"]
    reverter = next(d for d in sorted(devices) if device_bucket(d) < 2500)
    event = {
        "event": "reverted",
        "version": "1.1.0",
        "to": "1.0.0",
        "reason": "median latency 9.10 ms over the budget 3.00 ms in the health window",
        "at": time.time(),
    }
    body = {"model_id": "digits", "model_version": "1.0.0", "health": {"events": [event]}}
    for _ in range(2):  # the agent resends an event until a check-in succeeds: stored once
        r = fleet.client.post(f"/api/v1/devices/{reverter}/checkin", json=body, headers=devices[reverter])
        assert r.status_code == 200, r.text
    others = {d: h for d, h in devices.items() if d != reverter}
    report_all(fleet, others, np.random.default_rng(6))  # same confidence, no telemetry rollbacks
    r = rollout_state(fleet, rid)
    assert r["state"] == "halted", r["decisions"]
    halt = r["decisions"][-1]
    assert halt["numbers"]["checks"]["rollback_rate"] == "worse"
    assert halt["numbers"]["candidate"]["reverts"] == 1 and halt["numbers"]["candidate"]["rollbacks"] == 1
    assert any("rollback rate" in reason for reason in halt["reasons"])

    # a revert the server asked for is stored too, but marked (it says nothing about the version)
    back = {**event, "at": time.time(), "by": "server", "reason": "rollout halted"}
    body["health"] = {"events": [back]}
    assert fleet.client.post(f"/api/v1/devices/{reverter}/checkin", json=body, headers=devices[reverter])
    rows = fleet.client.get(f"/api/v1/devices/{reverter}/reverts", headers=fleet.admin).json()
    assert [(x["version"], x["to_version"], x["by_server"]) for x in rows] == [
        ("1.1.0", "1.0.0", True),
        ("1.1.0", "1.0.0", False),
    ]
    assert rows[1]["reason"] == event["reason"]
    assert len(fleet.client.get("/api/v1/reverts", headers=fleet.admin).json()) == 2

    listing = {d["id"]: d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json()}
    row = listing[reverter]
    # only the device's own revert counts (issue 11: a server-requested one is not the device's)
    assert (row["model_version"], row["assigned_version"], row["reverts"]) == ("1.0.0", "1.0.0", 1)
    assert row["last_checkin"].endswith("Z") and row["last_seen"] is not None

    # a device's telemetry windows, newest first; 404 for an unknown device
    dev = next(iter(others))
    windows = fleet.client.get(f"/api/v1/devices/{dev}/telemetry", headers=fleet.admin).json()
    assert len(windows) == 1 and windows[0]["inferences"] == 60 and windows[0]["model_id"] == "digits"
    assert fleet.client.get("/api/v1/devices/nope/telemetry", headers=fleet.admin).status_code == 404
    assert fleet.client.get(f"/api/v1/devices/{reverter}/telemetry", headers=fleet.admin).json() == []

    page = fleet.client.get("/dashboard", headers=fleet.admin).text
    assert "<h2>Reverts</h2>" in page and reverter in page and "median latency 9.10 ms" in page


def test_candidate_drift_is_judged_against_the_controls_live_confidence(fleet40):
    """Issue 22 (8): the dashboard showed the bad candidate as "PSI 0.021 ok" against its own validation
    histogram; during (and after) its rollout it is also compared with the control's live histogram of
    the same periods, and the worse verdict is the one shown."""
    from liteship.fleet import panels

    fleet, devices = fleet40
    rid = fleet.rollout("1.1.0", stages=[50, 100], thresholds={"min_predictions": 10**9}).json()["id"]
    rng = np.random.default_rng(5)
    for _ in range(2):
        report_all(fleet, devices, rng, candidate=(2, 8), control=(8, 2))  # the candidate is unsure
    r = fleet.client.get("/api/v1/drift", params={"model_id": "digits"}, headers=fleet.admin)
    assert r.status_code == 200, r.text
    series = {d["version"]: d for d in r.json()}
    cand = series["1.1.0"]
    versus = cand["versus_control"]
    assert versus["control_version"] == "1.0.0" and versus["rollout_id"] == rid
    assert versus["points"] and versus["points"][-1]["psi"] >= 0.2
    assert (
        cand["latest_level"] == "alert" and "against the live confidence of the control 1.0.0" in cand["note"]
    )
    assert series["1.0.0"]["versus_control"] is None
    html = panels.drift_panel(list(series.values()), "digits")
    assert "against the live confidence of the control 1.0.0" in html


def _section(page: str, rid: int) -> str:
    start = page.index(f'id="rollout-{rid}"')
    return page[start : page.index("</section>", start)]


def test_a_finished_rollout_keeps_its_arm_panels_with_its_final_verdict(fleet40):
    """Issue 22 (8): a halted rollout used to lose its arm panels on the dashboard; its model's latest
    rollout keeps them (as they were when it ended) with the final verdict, older ones are listed."""
    fleet, devices = fleet40
    rng = np.random.default_rng(7)
    rid = fleet.rollout("1.1.0", stages=[25, 100]).json()["id"]
    versions = report_all(fleet, devices, rng, candidate=(3, 2))
    assert rollout_state(fleet, rid)["state"] == "halted"
    panel = _section(fleet.client.get("/dashboard", headers=fleet.admin).text, rid)
    assert 'data-finished="halted"' in panel and "<b>Finished</b> (halted)" in panel
    assert 'final verdict: <span class="badge halt">halt</span> by engine' in panel
    assert "candidate confidence is lower" in panel
    assert 'aria-label="confidence histograms"' in panel  # the arms' histograms
    assert "latency p95 per period" in panel and "until it ended at" in panel
    assert (
        '<table class="stats">' in panel and '<span class="badge halt">worse</span>' in panel
    )  # the numbers
    assert 'class="actions"' not in panel  # nothing to press on a finished rollout
    # telemetry after the end does not change the panel's histograms (they are the arms at the end)
    for dev, headers in devices.items():
        fleet.checkin(dev, headers, versions[dev])
    again = _section(fleet.client.get("/dashboard", headers=fleet.admin).text, rid)
    hist = re.compile(r'<svg class="chart" role="img" aria-label="confidence histograms".*?</svg>', re.S)
    assert hist.search(again).group(0) == hist.search(panel).group(0)
    # a newer rollout of the model: the older one keeps its decisions only
    newer = fleet.rollout("1.1.0", stages=[25, 100]).json()["id"]
    page = fleet.client.get("/dashboard", headers=fleet.admin).text
    assert "confidence histograms" not in _section(page, rid) and "halt" in _section(page, rid)
    assert "confidence histograms" in _section(page, newer)


def test_the_dashboard_drift_axis_reads_the_hours_of_the_telemetry(fleet40):
    """Issue 22 (8): the drift chart's axis covered ±30 s around the start of the only hour with data."""
    fleet, devices = fleet40
    rng = np.random.default_rng(8)
    before = time.time()
    report_all(fleet, devices, rng)
    after = time.time()
    page = fleet.client.get("/dashboard", headers=fleet.admin).text
    drift = page[page.index('<figure class="drift">') :]
    start = re.search(r'class="axis-start"[^>]*>([^<]*)<', drift).group(1)
    end = re.search(r'class="axis-end"[^>]*>([^<]*)<', drift).group(1)
    first, last = (t // 3600 * 3600 for t in (before, after))
    assert start == time.strftime("%H:%M", time.gmtime(first))
    assert end == time.strftime("%H:%M", time.gmtime(last + 3600)) + " UTC"
    assert "PSI per 60 min period (UTC)" in drift


def test_concurrent_telemetry_posts_evaluate_a_rollout_once(fleet40, monkeypatch):
    """Two telemetry posts at the same moment both found the rollout due and both applied the verdict
    (two `advance` decisions 2 ms apart in the three-agent e2e test; on SQLite `SELECT … FOR UPDATE` is
    no lock). Now one claims the evaluation with an atomic UPDATE; the other waits for it and evaluates
    the new state. The engine is held at a barrier so that both requests are inside it before the fix."""
    import contextlib
    import threading

    from liteship.fleet import rollout as machine

    fleet, devices = fleet40
    rng = np.random.default_rng(9)
    rid = fleet.rollout("1.1.0", stages=[25, 60, 100]).json()["id"]
    assert fleet.client.post(f"/api/v1/rollouts/{rid}/pause", headers=fleet.admin).status_code == 200
    versions = report_all(fleet, devices, rng)  # paused: stored, not evaluated
    assert fleet.client.post(f"/api/v1/rollouts/{rid}/resume", headers=fleet.admin).status_code == 200
    barrier, real = threading.Barrier(2, timeout=3), machine.verdict_now

    def held(session, *, rollout):  # the real engine, entered by both requests before either decides
        with contextlib.suppress(threading.BrokenBarrierError):  # after the fix: the other waits on the claim
            barrier.wait()
        return real(session, rollout=rollout)

    monkeypatch.setattr(machine, "verdict_now", held)
    posts = list(devices.items())[:2]
    results: list[int] = []

    def post(dev, headers):
        hist = conf_hist(rng, 60, 8, 2)
        r = fleet.client.post(
            f"/api/v1/devices/{dev}/telemetry", json=window(versions[dev], hist), headers=headers
        )
        results.append(r.status_code)

    threads = [threading.Thread(target=post, args=p) for p in posts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [201, 201]
    r = rollout_state(fleet, rid)
    moves = [
        (d["action"], d["stage_index"])
        for d in r["decisions"]
        if d["by"] == "engine" and d["action"] != "wait"
    ]
    assert moves == [("advance", 1)] and r["stage_index"] == 1, moves
