"""A real agent process with ``agent run --mirror`` against the real server and two nginx mirrors on
loopback: the tampered mirror is refused, the mirror that is down is skipped, the good one delivers,
and none of them sees the device token."""

from __future__ import annotations

import importlib.util
import json
import signal
from pathlib import Path

import pytest
from agent_e2e_conftest import free_port, start_agent, wait_for
from agent_test_helpers import build

from liteship.agent.store import Store

_spec = importlib.util.spec_from_file_location(
    "fleet_test_services", Path(__file__).resolve().parents[2] / "integration/fleet/services.py"
)
services = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(services)


@pytest.fixture
def mirrors(tmp_path):
    good = services.Nginx(tmp_path / "good-root", tmp_path / "good").start()
    bad = services.Nginx(tmp_path / "bad-root", tmp_path / "bad")
    try:
        bad.start()
        yield good, bad
    finally:
        bad.stop()
        good.stop()


def test_agent_process_refuses_tampered_mirror_skips_down_one_and_installs(
    fleet, enrolled, tflite_float, keys, golden, digit_pngs, mirrors, tmp_path
):
    good, bad = mirrors
    package = build(
        tflite_float.read_bytes(), tmp_path / "lsp", "1.0.0", keys.private_path, golden, model_id="mirrored"
    )
    release = fleet.publish(package)
    services.mirror_copy(good.root, release, package)
    tampered = bytearray(package.read_bytes())
    tampered[-100] ^= 0x01
    services.mirror_copy(bad.root, release, package, bytes(tampered))
    down = f"http://127.0.0.1:{free_port()}"
    state = enrolled("dev-mirror", "mirrored")
    agent = start_agent(state, digit_pngs, "--mirror", bad.url, "--mirror", down, "--mirror", good.url)
    try:
        wait_for(lambda: Store(state).current_version() == "1.0.0", timeout=90)
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    assert [line.split()[0] for line in bad.access_log()] == ["200"]  # served, and refused by TUF
    assert [line.split()[0] for line in good.access_log()] == ["200"]  # the next good source delivered
    assert all("Bearer" not in line for line in bad.access_log() + good.access_log())
    log = [
        json.loads(line) for line in (state / "agent.log").read_text().splitlines() if line.startswith("{")
    ]
    messages = [entry["msg"] for entry in log]
    assert "download source refused" in messages and "download source skipped" in messages
