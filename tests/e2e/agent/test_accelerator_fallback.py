"""The real agent asked for an accelerator that cannot start (issue 15): it runs on the CPU, logs why,
and the fleet sees it — the device's profile, ``fleet devices`` (and the dashboard, same line). The NPU is
the accelerator missing here (ai-edge-litert's dispatch library needs its vendor runtime), so no GPU
driver has to be broken for the test."""

from __future__ import annotations

import json

import pytest
from agent_e2e_conftest import ADMIN, start_agent, wait_for
from agent_test_helpers import build

from liteship.runtime.compiled import npu_unavailable


def test_agent_on_npu_cpu_falls_back_to_the_cpu_and_the_fleet_is_told_why(
    fleet, keys, golden, tflite_float, cli, digit_pngs, tmp_path, enrolled
):
    if npu_unavailable() is None:
        pytest.skip("an NPU dispatch library loads here: nothing would fall back")
    pkg = build(
        tflite_float.read_bytes(), tmp_path / "pkg", "1.0.0", keys.private_path, golden, model_id="npu"
    )
    fleet.publish(pkg)
    state = enrolled("dev-npu", "npu")
    agent = start_agent(state, digit_pngs, "--accelerator", "npu,cpu")

    def fallback_reported():
        d = next((d for d in fleet.devices() if d["id"] == "dev-npu"), None)
        return d if d and (d.get("runtime") or {}).get("accelerator_fallback") else None

    try:
        device = wait_for(fallback_reported, timeout=120)
    finally:
        agent.terminate()
        agent.wait(30)
    runtime = device["runtime"]
    assert runtime["accelerator"] == "cpu" and runtime["accelerator_requested"] == "npu,cpu"
    assert "no usable NPU" in runtime["accelerator_fallback"]
    assert device["model_version"] == "1.0.0"  # installed and running: not a crash, not a rollback
    log = [
        json.loads(line) for line in (state / "agent.log").read_text().splitlines() if line.startswith("{")
    ]
    fell = [e for e in log if e["msg"] == "accelerator fell back to the CPU"]
    assert fell and fell[0]["requested"] == "npu,cpu" and "no usable NPU" in fell[0]["reason"]
    # a wide terminal: the devices table has ten columns, the profile cell says why it fell back
    env = {"LITESHIP_SERVER": fleet.url, "LITESHIP_TOKEN": ADMIN, "COLUMNS": "260"}
    r = cli("fleet", "devices", env=env)
    assert r.returncode == 0, r.stderr
    assert "fell back from npu,cpu" in " ".join(r.stdout.split())
