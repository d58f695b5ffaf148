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
