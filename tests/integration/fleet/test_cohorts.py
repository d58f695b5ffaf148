"""Cohorts and maintenance windows on the server (issue 24.3-4): tags at enrollment or set by the
operator, rollouts that take only tagged devices, a cohort pinned to a version, update windows per
device and per tag in the assignment."""

from __future__ import annotations

ENROLL = "enroll-token-for-tests-0123456789"  # conftest.ENROLL


def register(fleet, device_id, tags=()):
    r = fleet.client.post(
        "/api/v1/devices/register",
        json={"device_id": device_id, "enrollment_token": ENROLL, "model_id": "digits", "tags": list(tags)},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_tags_target_rollouts_pins_and_windows(fleet, make_package):
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        assert fleet.publish(make_package("digits", v)).status_code == 201
    canary = {f"c{i}": register(fleet, f"c{i}", ["ring=canary", "site=berlin"]) for i in range(4)}
    others = {f"o{i}": register(fleet, f"o{i}") for i in range(4)}
    r = fleet.rollout("1.1.0", stages=[100], tags=["ring=canary"])
    assert r.status_code == 201 and r.json()["tags"] == ["ring=canary"], r.text
    for dev, h in canary.items():
        a = fleet.checkin(dev, h).json()
        assert (a["version"], a["arm"]) == ("1.1.0", "candidate"), a
    for dev, h in others.items():
        a = fleet.checkin(dev, h).json()
        assert (a["version"], a["reason_code"], a["arm"]) == ("1.0.0", "not-in-rollout", None), a

    # the operator tags one more device into the cohort, and takes one out
    r = fleet.client.patch("/api/v1/devices/o0", json={"add_tags": ["ring=canary"]}, headers=fleet.admin)
    assert r.status_code == 200 and r.json()["tags"] == ["ring=canary"]
    fleet.client.patch("/api/v1/devices/c0", json={"remove_tags": ["ring=canary"]}, headers=fleet.admin)
    assert fleet.checkin("o0", others["o0"]).json()["version"] == "1.1.0"
    assert fleet.checkin("c0", canary["c0"]).json()["reason_code"] == "not-in-rollout"

    # a cohort pinned to a version stays there, whatever the rollout says
    r = fleet.client.post(
        "/api/v1/models/digits/pins", json={"tag": "site=berlin", "version": "1.2.0"}, headers=fleet.admin
    )
    assert r.status_code == 201 and r.json() == {"site=berlin": "1.2.0"}
    for dev, h in canary.items():
        a = fleet.checkin(dev, h).json()
        assert (a["version"], a["reason_code"]) == ("1.2.0", "pinned"), a
    assert fleet.checkin("o1", others["o1"]).json()["version"] == "1.0.0"
    assert (
        fleet.client.delete("/api/v1/models/digits/pins/site=berlin", headers=fleet.admin).status_code == 200
    )
    assert fleet.checkin("c1", canary["c1"]).json()["version"] == "1.1.0"

    # update windows: the device's own and its tags'
    r = fleet.client.put(
        "/api/v1/cohorts/site=berlin/windows", json={"windows": ["02:00-04:00"]}, headers=fleet.admin
    )
    assert r.status_code == 200 and r.json() == {"site=berlin": ["02:00-04:00"]}
    fleet.client.patch("/api/v1/devices/c1", json={"update_windows": ["22:00-23:00"]}, headers=fleet.admin)
    assert fleet.checkin("c1", canary["c1"]).json()["update_windows"] == ["02:00-04:00", "22:00-23:00"]
    assert fleet.checkin("c2", canary["c2"]).json()["update_windows"] == ["02:00-04:00"]
    assert fleet.checkin("o1", others["o1"]).json()["update_windows"] is None
    listing = {d["id"]: d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json()}
    assert listing["c1"]["tags"] == ["ring=canary", "site=berlin"] and listing["c1"]["update_windows"] == [
        "22:00-23:00"
    ]


def test_bad_cohort_input_is_a_clear_4xx(fleet, make_package):
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    register(fleet, "d0")
    bad = [
        ("patch", "/api/v1/devices/d0", {"update_windows": ["25:00-26:00"]}, 422),
        ("patch", "/api/v1/devices/d0", {"tags": ["Has Space"]}, 422),
        ("patch", "/api/v1/devices/nope", {"tags": ["a"]}, 404),
        ("post", "/api/v1/models/digits/pins", {"tag": "ring=a", "version": "9.9.9"}, 404),
        ("put", "/api/v1/cohorts/BAD TAG/windows", {"windows": []}, 422),
    ]
    for method, path, body, code in bad:
        r = getattr(fleet.client, method)(path, json=body, headers=fleet.admin)
        assert r.status_code == code, (path, r.status_code, r.text)
        assert "detail" in r.json()
    r = fleet.client.post(
        "/api/v1/devices/register",
        json={"device_id": "d1", "enrollment_token": ENROLL, "tags": ["x"] * 17},
    )
    assert r.status_code == 422
