"""The agent against the real fleet server on loopback: updates, health-window revert, telemetry that
survives the server being down, refusals, an aborted rollout's rollback-to-control and SIGTERM.
SIGKILL of the whole agent mid-update is in test_crash_update.py."""

from __future__ import annotations

import json
import signal

import httpx
import pytest
from agent_e2e_conftest import ADMIN, start_agent, wait_for
from agent_test_helpers import blowup_model, build, slot_ok

from liteship.agent.client import DeviceClient
from liteship.agent.clock import Clock
from liteship.agent.store import Store
from liteship.agent.updater import Updater


@pytest.fixture(scope="module")
def make_pkg(tflite_float, keys, golden, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e-lsp")
    good = tflite_float.read_bytes()
    bad = blowup_model(good, golden, digits[2][:40] * 255.0)

    def make(model_id, version, model="good"):
        return build(
            good if model == "good" else bad,
            out / model_id,
            version,
            keys.private_path,
            golden,
            model_id=model_id,
        )

    return make


def state_of(state):
    return json.loads((state / "state.json").read_text()) if (state / "state.json").exists() else {}


def committed(state, version):
    s = state_of(state)
    return Store(state).current_version() == version and s.get("pending") is None


def test_update_revert_offline_telemetry_and_sigterm(fleet, enrolled, make_pkg, digit_pngs, tmp_path):
    fleet.publish(make_pkg("flow", "1.0.0"))
    state = enrolled("dev-flow", "flow")
    sink = tmp_path / "results.jsonl"
    agent = start_agent(state, digit_pngs, "--window", "0.3", "--health-inferences", "10", sink=sink)
    try:
        wait_for(lambda: committed(state, "1.0.0"))
        fleet.publish(make_pkg("flow", "1.1.0"), channel="stable")
        wait_for(lambda: committed(state, "1.1.0"))
        fleet.publish(make_pkg("flow", "2.0.0", "blowup"), channel="stable")  # NaN on real frames
        wait_for(lambda: "2.0.0" in state_of(state).get("failed", {}))
        assert Store(state).current_version() == "1.1.0"
        dev = wait_for(
            lambda: next(
                (
                    d
                    for d in fleet.devices()
                    if d["id"] == "dev-flow" and d["health"] and d["health"]["events"]
                ),
                None,
            )
        )
        assert (
            dev["health"]["events"][0]["version"] == "2.0.0"
            and dev["health"]["events"][0]["event"] == "reverted"
        )
        fleet.stop()  # server unreachable: windows pile up in the spool
        wait_for(lambda: len(list((state / "spool").glob("w-*.json"))) >= 3, timeout=30)
        fleet.start()
        wait_for(lambda: not list((state / "spool").glob("w-*.json")), timeout=30)
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=30)
    assert code == 0
    assert list((state / "spool").glob("w-*.json")) == []  # flushed at shutdown
    results = [json.loads(line) for line in sink.read_text().splitlines()]  # every line complete
    windows = fleet.windows("dev-flow")
    assert len({w[0] for w in windows}) == len(windows)
    assert sum(w[1] for w in windows) == len(results)  # no window lost, none counted twice
    assert sum(w[2] for w in windows) >= 1 and {"1.0.0", "1.1.0", "2.0.0"} <= {w[3] for w in windows}
    assert sum(1 for r in results if r["version"] == "2.0.0") >= 1


def test_tampered_artifact_and_rollback_refused_on_real_server(fleet, enrolled, make_pkg, keys, tmp_path):
    r1 = fleet.publish(make_pkg("refuse", "1.0.0"))
    state = enrolled("dev-refuse", "refuse")
    dev = json.loads((state / "device.json").read_text())
    store = Store(state, keys.public_path)
    updater = Updater(
        store, DeviceClient(fleet.url, dev["device_id"], dev["token"]), Clock(state / "clock.json")
    )
    assert updater.poll_once()["action"] == "installed"
    r2 = fleet.publish(make_pkg("refuse", "1.1.0"), channel="stable")
    blob = fleet.data_dir / "artifacts" / r2["sha256"][:2] / r2["sha256"]
    original = blob.read_bytes()
    blob.write_bytes(original[:200] + bytes([original[200] ^ 1]) + original[201:])
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "hash") and slot_ok(store) == "1.0.0"
    blob.write_bytes(original)
    assert updater.poll_once()["action"] == "installed"
    store.commit()
    # a rollback attempt: the server assigns an older version that is not this device's fallback
    store.install(make_pkg("refuse", "1.5.0"))  # provisioned locally; the server's stable is 1.1.0
    store.commit()
    assert store.previous_version() == "1.1.0"
    store._point("previous", None)
    d = updater.poll_once()
    assert (d["action"], d["code"]) == ("refused", "rollback") and slot_ok(store) == "1.5.0"
    assert r1["version"] == "1.0.0"


def admin_post(fleet, path, body=None):
    r = httpx.post(f"{fleet.url}{path}", json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_aborted_rollout_sends_a_candidate_only_device_to_control(
    fleet, enrolled, make_pkg, digit_pngs, cli, tmp_path
):
    fleet.publish(make_pkg("ab", "1.0.0"))  # the first release becomes stable: the control
    fleet.publish(make_pkg("ab", "1.1.0"))
    rollout = admin_post(
        fleet, "/api/v1/rollouts", {"model_id": "ab", "candidate_version": "1.1.0", "stages": [100]}
    )
    state = enrolled("dev-ab", "ab")
    sink = tmp_path / "ab.jsonl"
    agent = start_agent(state, digit_pngs, "--window", "0.3", "--health-inferences", "10", sink=sink)
    try:
        wait_for(lambda: committed(state, "1.1.0"))
        # the candidate is the only model this device ever had: no fallback slot to go back to
        assert sorted(p.name for p in (state / "versions").iterdir()) == ["1.1.0"]
        assert Store(state).previous_version() is None
        admin_post(fleet, f"/api/v1/rollouts/{rollout['id']}/abort")
        wait_for(lambda: committed(state, "1.0.0"))
        wait_for(lambda: any(d["id"] == "dev-ab" and d["model_version"] == "1.0.0" for d in fleet.devices()))
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=30)
    assert code == 0
    s = state_of(state)
    down = s["last_downgrade"]
    assert (down["from"], down["to"], down["rollout_id"]) == ("1.1.0", "1.0.0", rollout["id"])
    assert down["reason"].startswith("downgraded to 1.0.0 on the server's rollback-to-control, from 1.1.0")
    assert "aborted" in down["reason"] and s["failed"] == {}
    # issue 22 (7): the aborted candidate is not kept as the fallback
    assert slot_ok(Store(state)) == "1.0.0" and Store(state).previous_version() is None
    logs = [json.loads(x) for x in (state / "agent.log").read_text().splitlines() if x.startswith("{")]
    checkins = [e for e in logs if e["msg"] == "check-in"]
    assert any(e["action"] == "downgraded" and e["code"] == "rollback-to-control" for e in checkins)
    results = [json.loads(line) for line in sink.read_text().splitlines()]
    assert results[0]["version"] == "1.1.0" and results[-1]["version"] == "1.0.0"
    r = cli("agent", "status", "--state-dir", str(state))
    assert "downgrade downgraded to 1.0.0 on the server's rollback-to-control" in r.stdout, r.stdout
    assert "previous  -" in r.stdout, r.stdout
