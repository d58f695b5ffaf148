"""``liteship serve --workers 3`` on PostgreSQL, as a real process: every worker serves (the
``X-Liteship-Worker`` pid of each answer), check-ins and rollout changes are seen by every worker (no
stale cached plan), a killed worker leaves the others serving, and a device whose check-in dies with
its worker retries without losing state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN, ENROLL, free_port

pytestmark = pytest.mark.postgres
WORKERS = 3


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


@pytest.fixture(scope="module")
def server(postgres_server, tmp_path_factory, keys, make_package) -> Iterator[dict]:
    import psycopg

    with psycopg.connect(postgres_server.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE workers")
    data = tmp_path_factory.mktemp("workers") / "data"
    port = free_port()
    env = {
        **os.environ,
        "LITESHIP_ADMIN_TOKEN": ADMIN,
        "LITESHIP_ENROLLMENT_TOKEN": ENROLL,
        "LITESHIP_ENVIRONMENT": "production",
        # a device here checks in back to back (hundreds a second): the per-device limit of 60 a minute
        # (liteship.fleet.limits, tested in test_rate_limits.py) would answer 429 before a worker is killed
        "LITESHIP_LIMIT_CHECKINS_PER_MINUTE": "1000000",
        "LITESHIP_LIMIT_WINDOWS_PER_MINUTE": "1000000",
    }
    cmd = [str(Path(sys.executable).with_name("liteship")), "serve", "--workers", str(WORKERS)]
    cmd += ["--db", f"{postgres_server}/workers", "--data", str(data), "--port", str(port)]
    cmd += ["--trusted-key", str(keys["good"].public_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"serve --workers {WORKERS} did not start: {proc.stdout.read() if proc.stdout else ''}")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for version in ("1.0.0", "1.1.0"):
        r = httpx.post(
            url + "/api/v1/releases", content=make_package("digits", version).read_bytes(), headers=admin
        )
        assert r.status_code == 201, r.text
    yield {"url": url, "proc": proc, "admin": admin}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def fresh(method: str, url: str, **kw) -> httpx.Response:
    """One request on a new connection (the kernel hands each connection to one worker)."""
    with httpx.Client(timeout=10) as c:
        return c.request(method, url, **kw)


def workers_seen(url: str, want: int, tries: int = 300) -> dict[int, httpx.Response]:
    seen: dict[int, httpx.Response] = {}
    for _ in range(tries):
        r = fresh("GET", url + "/healthz")
        seen[int(r.headers["x-liteship-worker"])] = r
        if len(seen) >= want:
            break
    return seen


def register(url: str, device: str) -> dict[str, str]:
    r = fresh(
        "POST",
        url + "/api/v1/devices/register",
        json={"device_id": device, "enrollment_token": ENROLL, "model_id": "digits"},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def check_in(url: str, device: str, headers: dict, version: str | None, seq: int = 0) -> httpx.Response:
    body = {"model_id": "digits", "model_version": version, "health": {"status": "ok", "seq": seq}}
    return fresh("POST", f"{url}/api/v1/devices/{device}/checkin", json=body, headers=headers)


def test_every_worker_serves(server):
    seen = workers_seen(server["url"], WORKERS)
    assert len(seen) == WORKERS, f"only workers {sorted(seen)} answered"
    assert set(seen) <= _children(server["proc"].pid)  # they are serve's worker processes


def test_checkins_and_rollout_changes_are_seen_by_every_worker(server):
    url, admin = server["url"], server["admin"]
    headers = register(url, "w-dev")
    versions_by_worker: dict[int, str] = {}
    for i in range(60):  # before the rollout: every worker assigns the stable 1.0.0
        r = check_in(url, "w-dev", headers, "1.0.0", seq=i)
        assert r.status_code == 200, r.text
        versions_by_worker[int(r.headers["x-liteship-worker"])] = r.json()["version"]
        if len(versions_by_worker) == WORKERS:
            break
    assert len(versions_by_worker) == WORKERS
    assert set(versions_by_worker.values()) == {"1.0.0"}  # all workers agree
    rollout = fresh(
        "POST",
        url + "/api/v1/rollouts",
        json={"model_id": "digits", "candidate_version": "1.1.0", "stages": [100]},
        headers=admin,
    )
    assert rollout.status_code == 201, rollout.text
    rid = rollout.json()["id"]

    def every_worker_assigns(running: str, expected: str, arm: str | None) -> None:
        seen: dict[int, tuple[str, str | None]] = {}
        for i in range(300):
            r = check_in(url, "w-dev", headers, running, seq=1000 + i)
            assert r.status_code == 200, r.text
            pid = int(r.headers["x-liteship-worker"])
            seen[pid] = (r.json()["version"], r.json()["arm"])
            assert seen[pid] == (expected, arm), f"worker {pid} answered a stale plan: {r.json()}"
            if len(seen) == WORKERS:
                return
        pytest.fail(f"only workers {sorted(seen)} answered")

    every_worker_assigns("1.0.0", "1.1.0", "candidate")  # the first answer after the change, on every worker
    r = fresh("POST", f"{url}/api/v1/rollouts/{rid}/abort", headers=admin)
    assert r.status_code == 200, r.text
    every_worker_assigns("1.1.0", "1.0.0", "control")  # back to the control, on every worker
    # what a device reported on one worker is what every worker shows
    r = check_in(url, "w-dev", headers, "1.0.0", seq=4242)
    for _ in range(10):
        listed = fresh("GET", url + "/api/v1/devices", headers=admin).json()
        device = next(d for d in listed if d["id"] == "w-dev")
        assert device["health"]["seq"] == 4242 and device["model_version"] == "1.0.0"


def test_killed_worker_others_keep_serving_and_checkins_lose_nothing(server):
    from liteship.agent.client import DeviceClient
    from liteship.errors import ServerError

    url = server["url"]
    headers = register(url, "k-dev")
    state = {"sent": 0, "acked": 0, "retries": 0, "pid": 0}
    stop = threading.Event()
    errors: list[str] = []

    def device() -> None:  # a device checking in back to back; when a check-in fails it retries
        client = DeviceClient(url, "k-dev", headers["Authorization"].split()[1], timeout=5.0)
        path = "/api/v1/devices/k-dev/checkin"
        while not stop.is_set():
            state["sent"] += 1
            body = {
                "model_id": "digits",
                "model_version": "1.0.0",
                "health": {"status": "ok", "seq": state["sent"]},
            }
            while True:
                try:
                    r = client.request("POST", path, json=body)
                    state["acked"], state["pid"] = state["sent"], int(r.headers["x-liteship-worker"])
                    break
                except ServerError as e:
                    state["retries"] += 1
                    if e.status is not None and e.status < 500:
                        errors.append(str(e))
                        return
                    time.sleep(0.05)
        client.close()

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    killed: list[int] = []
    for _ in range(2):
        deadline = time.time() + 20
        while (state["pid"] in killed or not state["pid"]) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        killed.append(state["pid"])
        os.kill(killed[-1], signal.SIGKILL)  # the worker this device is talking to, mid-stream
        for _ in range(10):  # the others keep serving, on fresh connections
            r = fresh("GET", url + "/healthz")
            assert r.status_code == 200 and int(r.headers["x-liteship-worker"]) not in killed
    deadline = time.time() + 20
    while state["pid"] in killed and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=30)
    assert not errors and state["acked"] == state["sent"] > 10
    assert state["retries"] >= 2  # each kill cut the device off once; it retried on another worker
    listed = fresh("GET", url + "/api/v1/devices", headers=server["admin"]).json()
    device_row = next(d for d in listed if d["id"] == "k-dev")
    assert device_row["health"]["seq"] == state["acked"]  # the last acknowledged check-in is stored
    # the supervisor replaces killed workers: three serve again
    deadline = time.time() + 60
    while time.time() < deadline and len(workers_seen(url, WORKERS, tries=30)) < WORKERS:
        time.sleep(0.5)
    assert len(workers_seen(url, WORKERS)) == WORKERS
