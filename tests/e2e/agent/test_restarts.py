"""Restarts of the real agent process: clean stops are not crashes, unclean ones are counted, and the
server hears of every install at once. Regression tests for the QA report on issue 6."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from agent_e2e_conftest import ENROLL, start_agent, wait_for
from agent_test_helpers import build

from liteship.agent.store import Store


def run(cli, state: Path, frames: Path, *extra: str) -> subprocess.CompletedProcess:
    """One short, clean agent run (the source is a folder of 40 images, no --loop)."""
    args = ("agent", "run", "--state-dir", str(state), "--source", f"images:{frames}", "--threads", "1")
    r = cli(*args, "--max-frames", "5", *extra, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert r.returncode == 0, r.stderr
    return r


def logs(r: subprocess.CompletedProcess) -> list[dict]:
    """The JSON log lines; anything else on stderr (native output such as LiteRT's XNNPACK notice)
    fails the test."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), r.stderr
    return [json.loads(line) for line in lines]


def state_of(state: Path) -> dict:
    return json.loads((state / "state.json").read_text())


def test_clean_runs_keep_the_model_and_complete_its_health_window(
    fleet, keys, golden, tflite_float, cli, digit_pngs, tmp_path
):
    fleet.publish(
        build(
            tflite_float.read_bytes(),
            tmp_path / "pkg",
            "1.0.0",
            keys.private_path,
            golden,
            model_id="restart",
        )
    )
    state = tmp_path / "dev-restart"
    r = cli(
        "agent",
        "enroll",
        "--state-dir",
        str(state),
        "--server",
        fleet.url,
        "--enrollment-token",
        ENROLL,
        "--device-id",
        "dev-restart",
        "--model-id",
        "restart",
        "--key",
        keys.public_path,
    )
    assert r.returncode == 0, r.stderr
    assert "trust on first use" in r.stdout and "--tuf-root" in r.stdout
    assert f"{fleet.url}/tuf/metadata/1.root.json" in r.stdout

    first = logs(run(cli, state, digit_pngs, "--health-inferences", "18"))
    assert [e["action"] for e in first if e["msg"] == "check-in"][0] == "installed"
    stopped = next(e for e in first if e["msg"] == "agent stopped")
    assert stopped["frames"] == 5 and stopped["reason"] == "frame limit (5)"
    # the server learnt the version right after the install, not at the next run's check-in
    device = next(d for d in fleet.devices() if d["id"] == "dev-restart")
    assert device["model_version"] == "1.0.0"

    for _ in range(2):  # the QA repro: these used to count as crashes
        entries = logs(run(cli, state, digit_pngs, "--health-inferences", "18"))
        recovery = [e["action"] for e in entries if e["msg"] == "recovery"]
        assert recovery and "after a clean stop" in recovery[0]
    s = state_of(state)
    assert s["pending"]["version"] == "1.0.0" and s["pending"]["starts"] == 0
    assert s["pending"]["inferences"] == 15 and s["failed"] == {}

    fourth = logs(run(cli, state, digit_pngs, "--health-inferences", "18"))  # used to revert 1.0.0
    assert any(e["msg"] == "candidate committed" for e in fourth)
    s = state_of(state)
    assert s["pending"] is None and s["failed"] == {} and Store(state).current_version() == "1.0.0"
    r = cli("agent", "status", "--state-dir", str(state))
    assert "current   1.0.0" in r.stdout and "ago)" in r.stdout and "None" not in r.stdout


def test_unclean_stops_still_count(cli, keys, packages, digit_pngs, tmp_path):
    state = tmp_path / "st"
    for pkg in ("1.0.0", "1.1.0"):
        r = cli("agent", "install", "--state-dir", str(state), "--key", keys.public_path, str(packages[pkg]))
        assert r.returncode == 0, r.stderr
    assert "(fallback: 1.0.0)" in r.stdout

    def kill_a_running_agent() -> None:
        sink = tmp_path / "out.jsonl"
        sink.unlink(missing_ok=True)
        agent = start_agent(
            state, digit_pngs, "--key", keys.public_path, "--health-inferences", "100000", sink=sink
        )
        try:
            wait_for(lambda: sink.exists() and len(sink.read_text().splitlines()) >= 3, timeout=60)
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=30)

    kill_a_running_agent()
    entries = logs(run(cli, state, digit_pngs))
    assert any("after an unclean stop (1 of 2 allowed)" in e.get("action", "") for e in entries)
    kill_a_running_agent()
    run(cli, state, digit_pngs)  # a clean run in between neither counts nor resets the count
    assert state_of(state)["pending"]["starts"] == 2
    kill_a_running_agent()
    entries = logs(run(cli, state, digit_pngs))
    reverted = [e["action"] for e in entries if e["msg"] == "recovery"]
    assert reverted and reverted[0].startswith("reverted 1.1.0 to 1.0.0: the agent stopped uncleanly 3 times")
    assert Store(state).current_version() == "1.0.0" and "1.1.0" in state_of(state)["failed"]


def test_sigterm_is_a_clean_stop(cli, keys, packages, digit_pngs, tmp_path):
    state = tmp_path / "st"
    r = cli("agent", "install", "--state-dir", str(state), "--key", keys.public_path, str(packages["1.0.0"]))
    assert r.returncode == 0 and "(no fallback)" in r.stdout, r.stdout + r.stderr
    sink = tmp_path / "out.jsonl"
    agent = start_agent(
        state, digit_pngs, "--key", keys.public_path, "--health-inferences", "100000", sink=sink
    )
    wait_for(lambda: sink.exists() and len(sink.read_text().splitlines()) >= 3, timeout=60)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0
    assert state_of(state)["clean_shutdown"]
    before = state_of(state)["pending"]["inferences"]
    entries = logs(run(cli, state, digit_pngs, "--health-inferences", "100000"))
    assert any("after a clean stop" in e.get("action", "") for e in entries)
    pending = state_of(state)["pending"]
    assert pending["starts"] == 0 and pending["inferences"] == before + 5 and before >= 3
