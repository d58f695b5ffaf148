"""The check-in path caches plans per API worker (``liteship.fleet.checkin``): two apps on one database
stand for two workers; a rollout change made through one is seen by the very next check-in through the
other (no TTL, no stale window), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from liteship.fleet.app import create_app

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123456789"}
ENROLL = "enroll-token-for-tests-0123456789"


@pytest.fixture
def two_workers(make_settings, db_url):
    settings = make_settings(db_url)
    apps = [create_app(settings), create_app(settings)]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        yield a, b
    for app in apps:
        app.state.engine.dispose()


def test_plan_change_in_one_worker_is_seen_by_the_next_checkin_in_another(two_workers, make_package):
    admin, other = two_workers
    for version in ("1.0.0", "1.1.0"):
        r = admin.post(
            "/api/v1/releases", content=make_package("digits", version).read_bytes(), headers=ADMIN
        )
        assert r.status_code == 201, r.text
    body = {"device_id": "pi-cache", "enrollment_token": ENROLL, "model_id": "digits"}
    headers = {"Authorization": f"Bearer {admin.post('/api/v1/devices/register', json=body).json()['token']}"}

    def assigned() -> tuple[str, str | None]:
        body = {"model_id": "digits", "model_version": "1.0.0", "health": {"status": "ok"}}
        r = other.post("/api/v1/devices/pi-cache/checkin", json=body, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["version"], r.json()["arm"]

    def rollout(action: str | None = None, rollout_id: int | None = None) -> int:
        if action is None:
            body = {"model_id": "digits", "candidate_version": "1.1.0", "stages": [100]}
            r = admin.post("/api/v1/rollouts", json=body, headers=ADMIN)
        else:
            r = admin.post(f"/api/v1/rollouts/{rollout_id}/{action}", headers=ADMIN)
        assert r.status_code in (200, 201), r.text
        return r.json()["id"]

    assert assigned() == ("1.0.0", None)  # the other worker now caches the stable plan
    rollout_id = rollout()
    assert assigned() == ("1.1.0", "candidate")
    rollout("abort", rollout_id)
    assert assigned() == ("1.0.0", None)
    rollout_id = rollout()
    assert assigned() == ("1.1.0", "candidate")
    rollout("promote", rollout_id)
    assert assigned() == ("1.1.0", None)  # promoted: the stable channel moved

    listed = {d["id"]: d for d in admin.get("/api/v1/devices", headers=ADMIN).json()}
    assert listed["pi-cache"]["model_version"] == "1.0.0"  # every check-in is written through
    assert listed["pi-cache"]["last_seen"] is not None


def test_the_fast_path_answers_as_the_route_does(fleet, make_package):
    """Issue 24.6: a common check-in is answered by ``FastCheckIn``, anything else by the FastAPI route
    (here: a ``charset`` in the content type, a token not cached yet, another device's id, a bad body);
    both give the same answers, and the memoized assignment follows each device's profile and tags."""
    import json

    from liteship.fleet.api.routes import devices as routes

    for version in ("1.0.0", "1.1.0"):
        assert fleet.publish(make_package("digits", version)).status_code == 201
    assert fleet.rollout("1.1.0", stages=[50, 100], tags=["ring=a"]).status_code == 201
    r = fleet.client.put(
        "/api/v1/cohorts/ring=a/windows", json={"windows": ["01:00-02:00"]}, headers=fleet.admin
    )
    assert r.status_code == 200, r.text
    fast, slow = [], []
    real_fast = routes.FastCheckIn._fast

    def spy(self, scope, request, raw):
        found = real_fast(self, scope, request, raw)
        (fast if found is not None else slow).append(scope["path"])
        return found

    routes.FastCheckIn._fast = spy
    try:
        headers = {}
        for i, tags in enumerate((["ring=a"], ["ring=a"], [], ["ring=a", "site=x"])):
            body = {"device_id": f"f{i}", "enrollment_token": ENROLL, "model_id": "digits", "tags": tags}
            token = fleet.client.post("/api/v1/devices/register", json=body).json()["token"]
            headers[f"f{i}"] = {"Authorization": f"Bearer {token}"}
        body = {"model_id": "digits", "model_version": "1.0.0", "runtime": {"machine": "aarch64"}}

        def post(dev, content_type="application/json", payload=body, auth=None):
            h = {**(auth or headers[dev]), "Content-Type": content_type}
            return fleet.client.post(f"/api/v1/devices/{dev}/checkin", content=json.dumps(payload), headers=h)

        first = post("f0")  # the token is not cached yet: the route answers (and caches it)
        assert first.status_code == 200 and slow == ["/api/v1/devices/f0/checkin"] and not fast
        again = post("f0")
        assert again.status_code == 200 and fast == ["/api/v1/devices/f0/checkin"]
        charset = post("f0", "application/json; charset=utf-8")
        assert charset.status_code == 200 and len(slow) == 2
        assert first.json() == again.json() == charset.json()
        assert again.headers["content-type"] == charset.headers["content-type"] == "application/json"
        for dev in ("f1", "f2", "f3"):
            post(dev)
        answers = {dev: post(dev).json() for dev in ("f0", "f1", "f2", "f3")}
        assert all(a["device_id"] == dev for dev, a in answers.items())
        assert answers["f2"]["reason_code"] == "not-in-rollout" and answers["f2"]["update_windows"] is None
        assert answers["f0"]["update_windows"] == ["01:00-02:00"] and answers["f0"]["rollout_id"] is not None
        # refused on the fast path, answered by the route exactly as before
        other = post("f1", auth=headers["f0"])
        assert other.status_code == 403 and "cannot act for device 'f1'" in other.json()["detail"]
        bad = post("f0", payload={**body, "model_variant": "no spaces allowed"})
        assert bad.status_code == 422 and "model_variant" in bad.json()["detail"]
        unknown = post("f0", auth={"Authorization": "Bearer nope"})
        assert unknown.status_code == 401
    finally:
        routes.FastCheckIn._fast = real_fast


def test_a_locked_sqlite_database_sends_the_check_in_to_the_writer_thread(
    sqlite_fleet, make_package, monkeypatch
):
    """Issue 24.6: on SQLite a check-in runs on the event loop with no busy timeout; while another
    connection holds the write lock it fails at once (nothing written) and the writer thread runs it,
    waiting for the lock. WAL checkpoints are handed to the writer thread every CHECKPOINT_EVERY."""
    import sqlite3
    import threading
    import time

    from liteship.fleet import checkin

    fleet = sqlite_fleet
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    headers = fleet.register("pi-lock")
    checkins = fleet.app.state.checkins
    checkpoints = []
    real_checkpoint = checkins._checkpoint
    monkeypatch.setattr(checkin, "CHECKPOINT_EVERY", 2)
    monkeypatch.setattr(checkins, "_checkpoint", lambda: checkpoints.append(1) or real_checkpoint())
    for _ in range(4):
        assert fleet.checkin("pi-lock", headers, "1.0.0").status_code == 200
    deadline = time.time() + 10
    while len(checkpoints) < 2 and time.time() < deadline:
        time.sleep(0.01)
    assert len(checkpoints) == 2

    path = fleet.app.state.engine.url.database
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held for 0.5 s
    threading.Timer(0.5, holder.rollback).start()
    t0 = time.perf_counter()
    body = {"model_id": "digits", "model_version": "1.0.0", "health": {"status": "ok", "seq": 7}}
    r = fleet.client.post("/api/v1/devices/pi-lock/checkin", json=body, headers=headers)
    assert r.status_code == 200 and r.json()["version"] == "1.0.0", r.text
    assert time.perf_counter() - t0 >= 0.4  # it waited for the lock (on the writer thread)
    holder.close()
    device = next(
        d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json() if d["id"] == "pi-lock"
    )
    assert device["health"]["seq"] == 7  # stored once the lock was free
