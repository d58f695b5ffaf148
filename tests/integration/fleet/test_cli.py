"""`liteship serve` and `liteship fleet …` through the real console script, over HTTP on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN, ENROLL, free_port


@pytest.fixture
def served(tmp_path, keys):
    """`liteship serve` in a subprocess (SQLite, --data in tmp), stopped with SIGTERM."""
    port = free_port()
    env = {
        **os.environ,
        "LITESHIP_ADMIN_TOKEN": ADMIN,
        "LITESHIP_ENROLLMENT_TOKEN": ENROLL,
        "LITESHIP_ENVIRONMENT": "production",
    }
    exe = Path(sys.executable).parent / "liteship"
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--data",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--trusted-key",
            keys["good"].public_path,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail(proc.stdout.read().decode())
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    assert (tmp_path / "data" / "fleet.db").exists()


def test_fleet_commands(served, cli, make_package):
    env = {"LITESHIP_SERVER": served, "LITESHIP_TOKEN": ADMIN}
    r = cli("fleet", "publish", str(make_package("digits", "1.0.0")), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["channels"] == ["stable"]
    r = cli("fleet", "publish", str(make_package("digits", "1.1.0")), env=env)
    assert r.returncode == 0 and "published digits 1.1.0" in r.stdout
    r = cli("fleet", "publish", str(make_package("digits", "1.0.0")), env=env)
    assert r.returncode == 1 and "not newer than the latest published version 1.1.0" in r.stderr
    r = cli("fleet", "rollout", "start", "digits", "1.1.0", "--stages", "10,100", "--json", env=env)
    assert r.returncode == 0, r.stderr
    rid = json.loads(r.stdout)["id"]
    r = cli("fleet", "pause", str(rid), env=env)
    assert r.returncode == 0 and "paused" in r.stdout
    r = cli("fleet", "rollout", "status", "--json", env=env)
    assert json.loads(r.stdout)[0]["state"] == "paused"
    assert cli("fleet", "resume", str(rid), env=env).returncode == 0
    r = cli("fleet", "promote", str(rid), "--json", env=env)
    assert json.loads(r.stdout)["state"] == "promoted"
    r = cli("fleet", "abort", str(rid), env=env)
    assert r.returncode == 1 and "cannot abort rollout" in r.stderr
    httpx.post(served + "/api/v1/devices/register", json={"device_id": "pi-1", "enrollment_token": ENROLL})
    r = cli("fleet", "devices", "--json", env=env)
    assert [d["id"] for d in json.loads(r.stdout)] == ["pi-1"]
    r = cli("fleet", "drift", "digits", "--json", env=env)
    assert {s["version"] for s in json.loads(r.stdout)} == {"1.0.0", "1.1.0"}
    r = cli("fleet", "devices", env={**env, "LITESHIP_TOKEN": "wrong"})
    assert r.returncode == 1 and "401" in r.stderr


def test_serve_refuses_default_secret_in_production(cli, tmp_path):
    r = cli(
        "serve",
        "--data",
        str(tmp_path),
        env={"LITESHIP_ENVIRONMENT": "production", "LITESHIP_ADMIN_TOKEN": ""},
    )
    assert r.returncode == 2 and "admin_token" in r.stderr


def test_serve_refuses_workers_on_sqlite(cli, tmp_path):
    r = cli("serve", "--data", str(tmp_path), "--workers", "2")
    assert r.returncode == 2 and "PostgreSQL" in r.stderr
