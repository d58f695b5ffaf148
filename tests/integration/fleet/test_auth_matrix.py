"""Authorization matrix: who may call what. A device reads only its own assignment and posts only its own
telemetry; no device call can publish or change a rollout; the admin token cannot act as a device."""

from __future__ import annotations

import time

import pytest

from .conftest import ADMIN, ENROLL


def window(version: str = "1.0.0", n: int = 10) -> dict:
    return {
        "window_id": f"w{time.time_ns()}",
        "model_id": "digits",
        "model_version": version,
        "started": time.time() - 60,
        "ended": time.time(),
        "inferences": n,
        "confidence_hist": [0] * 19 + [n],
    }


@pytest.fixture
def setup(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    assert fleet.publish(make_package("digits", "1.1.0")).status_code == 201
    callers = {
        "none": {},
        "bogus": {"Authorization": "Bearer not-a-token"},
        "device_a": fleet.register("dev-a"),
        "device_b": fleet.register("dev-b"),
        "admin": {"Authorization": f"Bearer {ADMIN}"},
    }
    r = fleet.rollout("1.1.0", stages=[50, 100])
    assert r.status_code == 201
    return fleet, callers, r.json()["id"], make_package("digits", "1.2.0").read_bytes()


def test_matrix(setup):
    fleet, callers, rid, package = setup
    c = fleet.client
    # (method, path, kwargs, expected status per caller)
    admin_only = {"none": 401, "bogus": 401, "device_a": 403, "device_b": 403}
    own_a = {"none": 401, "bogus": 401, "device_a": "ok", "device_b": 403, "admin": 403}
    cases = [
        ("GET", "/api/v1/models", {}, {**admin_only, "admin": 200}),
        ("GET", "/api/v1/devices", {}, {**admin_only, "admin": 200}),
        ("GET", "/api/v1/rollouts", {}, {**admin_only, "admin": 200}),
        ("GET", f"/api/v1/rollouts/{rid}", {}, {**admin_only, "admin": 200}),
        ("GET", "/api/v1/drift?model_id=digits", {}, {**admin_only, "admin": 200}),
        # a device's telemetry and reverts are for the admin, even the device's own
        ("GET", "/api/v1/devices/dev-a/telemetry", {}, {**admin_only, "admin": 200}),
        ("GET", "/api/v1/devices/dev-a/reverts", {}, {**admin_only, "admin": 200}),
        ("GET", "/api/v1/reverts", {}, {**admin_only, "admin": 200}),
        ("GET", "/api/v1/tuf/targets-draft", {}, {**admin_only, "admin": 200}),
        ("PUT", "/api/v1/tuf/targets", {"content": b"{}"}, {**admin_only, "admin": 400}),
        (
            "POST",
            "/api/v1/rollouts",
            {"json": {"model_id": "digits", "candidate_version": "1.1.0"}},
            {**admin_only, "admin": 409},
        ),
        ("POST", f"/api/v1/rollouts/{rid}/pause", {}, {**admin_only, "admin": 200}),
        ("POST", f"/api/v1/rollouts/{rid}/resume", {}, {**admin_only, "admin": 200}),
        ("POST", f"/api/v1/rollouts/{rid}/evaluate", {}, {**admin_only, "admin": 200}),
        (
            "POST",
            "/api/v1/devices/dev-a/checkin",
            {"json": {"model_id": "digits", "model_version": "1.0.0"}},
            own_a,
        ),
        ("GET", "/api/v1/devices/dev-a/assignment", {}, own_a),
        ("POST", "/api/v1/devices/dev-a/telemetry", {"json": window()}, own_a),
        # destructive admin calls last
        ("POST", f"/api/v1/rollouts/{rid}/promote", {}, {**admin_only, "admin": 200}),
        ("POST", "/api/v1/releases", {"content": package}, {**admin_only, "admin": 201}),
    ]
    failures = []
    for method, path, kwargs, expected in cases:
        for caller, want in expected.items():
            if method == "POST" and "telemetry" in path:
                kwargs = {"json": window()}
            r = c.request(method, path, headers=callers[caller], **kwargs)
            ok = 200 <= r.status_code < 300 if want == "ok" else r.status_code == want
            if not ok:
                failures.append(f"{caller} {method} {path}: {r.status_code} (want {want}) {r.text[:120]}")
            if r.status_code == 401:
                assert r.headers.get("www-authenticate") == "Bearer"
    assert not failures, "\n".join(failures)
    # a device cannot publish, start or change a rollout: state is unchanged by their attempts above
    decisions = c.get(f"/api/v1/rollouts/{rid}", headers=callers["admin"]).json()["decisions"]
    assert [(d["action"], d["by"]) for d in decisions if d["action"] != "wait"] == [
        ("pause", "admin"),
        ("resume", "admin"),
        ("promote", "admin"),
    ]


def test_enrollment(fleet):
    r = fleet.client.post("/api/v1/devices/register", json={"device_id": "x", "enrollment_token": "wrong"})
    assert r.status_code == 403
    fleet.register("x")
    r = fleet.client.post("/api/v1/devices/register", json={"device_id": "x", "enrollment_token": ENROLL})
    assert r.status_code == 409  # an id cannot be taken over by registering again


def test_dashboard_needs_admin(setup):
    fleet, callers, _, _ = setup
    for caller in ("none", "device_a", "bogus"):
        r = fleet.client.get("/dashboard", headers=callers[caller], follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert fleet.client.get("/dashboard", headers=callers["admin"]).status_code == 200
    r = fleet.client.post("/dashboard/login", data={"token": "nope"}, follow_redirects=False)
    assert r.status_code == 401
    r = fleet.client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
