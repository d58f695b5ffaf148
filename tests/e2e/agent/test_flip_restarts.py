"""Issue 10 (Medium), with real processes: the agent restarted again and again (clean stops and
SIGKILLs at seeded random moments) while the server's assignment flips between the control 1.0.0 and
the candidate 1.1.0 (rollouts started and aborted). After every restart a verified model is in
`current` or `previous`, and no good model is ever reported as failing to load."""

from __future__ import annotations

import json
import random
import signal
import time

import httpx
from agent_e2e_conftest import ADMIN, start_agent, wait_for
from agent_test_helpers import build

from liteship.agent.store import Store


def admin_post(fleet, path, body=None):
    r = httpx.post(f"{fleet.url}{path}", json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def verified_slots(state, key) -> list[str]:
    store = Store(state, key)
    slots = [v for v in (store.current_version(), store.previous_version()) if v is not None]
    return [v for v in slots if store.slot_problem(store.versions / v) is None]


def test_restarts_while_assignments_flip_never_lose_the_model(
    fleet, enrolled, tflite_float, golden, digit_pngs, keys, tmp_path
):
    for version in ("1.0.0", "1.1.0"):  # the first release is stable: the control
        fleet.publish(
            build(
                tflite_float.read_bytes(),
                tmp_path / "pkg",
                version,
                keys.private_path,
                golden,
                model_id="flip",
            )
        )
    state = enrolled("dev-flip", "flip")
    args = ("--window", "0.3", "--health-inferences", "5", "--max-fps", "50")
    agent = start_agent(state, digit_pngs, *args)
    try:
        wait_for(lambda: Store(state).current_version() == "1.0.0")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    rng = random.Random(10)
    rollout, kills = None, 0
    for _ in range(6):
        if rollout is None:  # assign the candidate to every device
            rollout = admin_post(
                fleet, "/api/v1/rollouts", {"model_id": "flip", "candidate_version": "1.1.0", "stages": [100]}
            )
        else:  # abort: the device is sent back to the control
            admin_post(fleet, f"/api/v1/rollouts/{rollout['id']}/abort")
            rollout = None
        agent = start_agent(state, digit_pngs, *args)
        time.sleep(rng.uniform(0.5, 4.0))
        if rng.random() < 0.5:
            agent.kill()
            kills += 1
        else:
            agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        slots = verified_slots(state, keys.public_path)
        assert slots, f"no verified model left: {json.loads((state / 'state.json').read_text())}"
    log = (state / "agent.log").read_text()
    assert "model failed to load" not in log
    decisions = [
        e.get("action") for e in map(json.loads, filter(None, log.splitlines())) if e["msg"] == "check-in"
    ]
    assert "installed" in decisions and {"reverted-by-server", "downgraded"} & set(decisions), decisions
    assert kills >= 2
    s = json.loads((state / "state.json").read_text())
    assert "1.0.0" not in s["failed"], s["failed"]  # the control was never condemned by a race
