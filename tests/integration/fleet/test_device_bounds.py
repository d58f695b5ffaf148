"""Issue 10: one device must not be able to blind the fleet. Every number a device sends is bounded
at the schema, aggregation survives any stored row, a device cannot steer the engine by lying about
its arm, and the low-severity faults found by the attack run (each with its regression test)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from liteship.fleet.crud import device_bucket

from .conftest import ADMIN, ENROLL, LiveServer
from .test_rollouts import window

NOW = time.time()
GOOD = {
    "window_id": "w-good",
    "model_id": "digits",
    "model_version": "1.0.0",
    "started": NOW - 60,
    "ended": NOW,
    "inferences": 5,
    "confidence_hist": [0] * 19 + [5],
}


def raw_post(fleet, path: str, headers: dict, body: str):
    """POST JSON text as given (NaN, Infinity and huge integers are valid Python JSON)."""
    return fleet.client.post(path, content=body, headers={**headers, "content-type": "application/json"})


def everything_answers(fleet, rollout_id: int | None = None) -> None:
    """The pages a bad row used to break: dashboard, drift, evaluation."""
    assert fleet.client.get("/dashboard", headers=fleet.admin).status_code == 200
    r = fleet.client.get("/api/v1/drift", params={"model_id": "digits"}, headers=fleet.admin)
    assert r.status_code == 200, r.text
    if rollout_id is not None:
        r = fleet.client.post(f"/api/v1/rollouts/{rollout_id}/evaluate", headers=fleet.admin)
        assert r.status_code == 200, r.text


@pytest.fixture
def running(sqlite_fleet, make_package):
    """Two releases, six devices checked in on their arms, a rollout at 50 % (SQLite: the bounds act
    before the database; PostgreSQL runs the race and the migrations below)."""
    fleet = sqlite_fleet
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    assert fleet.publish(make_package("digits", "1.1.0")).status_code == 201
    devices = {f"hd-{i}": fleet.register(f"hd-{i}") for i in range(6)}
    rid = fleet.rollout("1.1.0", stages=[50, 100]).json()["id"]
    arms = {}
    for dev, headers in devices.items():
        a = fleet.checkin(dev, headers).json()
        assert fleet.checkin(dev, headers, a["version"]).status_code == 200
        arms[dev] = a
    return fleet, devices, arms, rid


BAD_WINDOWS = [
    ('"confidence_hist": [' + ",".join(["0"] * 19) + ", " + "1" + "0" * 400 + "]", "confidence_hist"),
    ('"dropped_windows": 100000000000000000000', "dropped_windows"),
    ('"started": NaN', "started"),
    ('"ended": Infinity', "ended"),
    ('"inferences": 10000000000', "inferences"),
    ('"latency_edges_ms": [5, 1], "latency_hist": [1, 1, 1]', "increase"),
    ('"latency_edges_ms": [1, 5], "latency_hist": [1, 1]', "latency_hist"),
    ('"latency_edges_ms": [1, 1e400], "latency_hist": [1, 1, 1]', "latency_edges_ms"),
    ('"started": 0, "ended": 9000000', "longer than"),
    ('"started": 5000000000, "ended": 5000000001', "started"),
    ('"out_of_range_fraction": NaN', "out_of_range_fraction"),
    # fleetaudit: counts that disagree with each other, the window's length or the server's clock
    ('"confidence_hist": [' + ",".join(["0"] * 19) + ", 6]", "confidence_hist counts 6 inferences"),
    ('"latency_edges_ms": [1, 5], "latency_hist": [0, 50, 0]', "latency_hist counts 50"),
    ('"inferences": 1000000000, "confidence_hist": [' + ",".join(["0"] * 19) + ", 1000000000]", "per second"),
    ('"errors": 7000000', "per second"),
    (f'"started": {NOW + 2 * 86400 - 60}, "ended": {NOW + 2 * 86400}', "after the server's clock"),
]


def test_out_of_bounds_telemetry_is_refused_and_nothing_breaks(running):
    fleet, devices, arms, rid = running
    dev = next(iter(devices))
    for field, message in BAD_WINDOWS:
        body = json.dumps({**GOOD, "model_version": arms[dev]["version"]})[:-1] + ", " + field + "}"
        r = raw_post(fleet, f"/api/v1/devices/{dev}/telemetry", devices[dev], body)
        assert r.status_code == 422, (field[:60], r.text)
        assert message in r.json()["detail"], (field[:60], r.json())
    with fleet.app.state.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM telemetry_windows")).scalar() == 0
    everything_answers(fleet, rid)
    # and every device's next good post still works (it used to 500 while a rollout ran)
    good = {**GOOD, "window_id": "w-next", "model_version": arms[dev]["version"]}
    assert (
        fleet.client.post(f"/api/v1/devices/{dev}/telemetry", json=good, headers=devices[dev]).status_code
        == 201
    )


def test_a_bad_stored_row_is_skipped_and_counted(running):
    """A row that slipped in (an older server, another tool) cannot make a page or decision fail."""
    fleet, devices, arms, rid = running
    dev = next(d for d, a in arms.items() if a["arm"] == "candidate")
    huge = "[" + ",".join(["0"] * 19 + ["1" + "0" * 400]) + "]"
    with fleet.app.state.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO telemetry_windows (device_id, window_id, model_id, model_version, started, "
                "ended, inferences, errors, rollbacks, out_of_range_fraction, confidence_hist, "
                "latency_hist, latency_edges_ms, dropped_windows, received_at, assigned) VALUES "
                "(:d, 'bad', 'digits', '1.1.0', :s, :e, 5, 0, 0, 0.0, :h, '[]', '[]', 0, :e, :t)"
            ),
            {"d": dev, "s": NOW - 10, "e": time.time(), "h": huge, "t": True},
        )
    everything_answers(fleet, rid)
    drift = fleet.client.get("/api/v1/drift", params={"model_id": "digits"}, headers=fleet.admin).json()
    # drift reads the hourly sums the server folds each window into as it arrives (issue 21 item 9): a
    # row written past the server is not in them, so it neither counts nor fails there
    assert {s["version"]: s["skipped_windows"] for s in drift} == {"1.0.0": 0, "1.1.0": 0}
    r = fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).json()
    assert r["next"]["numbers"]["candidate"]["skipped_windows"] == 1
    # and the good post that follows is stored and evaluated normally
    good = window("1.1.0", [0] * 19 + [7])
    assert (
        fleet.client.post(f"/api/v1/devices/{dev}/telemetry", json=good, headers=devices[dev]).status_code
        == 201
    )


def test_a_device_cannot_steer_the_engine_by_lying_about_its_arm(running):
    fleet, devices, arms, rid = running
    liar = next(d for d, a in arms.items() if a["arm"] == "control")
    lie = window("1.1.0", [200] + [0] * 19, errors=10_000)  # "the candidate is terrible"
    r = fleet.client.post(f"/api/v1/devices/{liar}/telemetry", json=lie, headers=devices[liar])
    assert r.status_code == 201, r.text  # stored, so the agent's spool drains …
    assert r.json()["counted"] is False and "not counted" in r.json()["note"]  # … but not counted
    numbers = fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).json()["next"]["numbers"]
    assert numbers["candidate"]["predictions"] == 0 and numbers["candidate"]["errors"] == 0
    # another model id is refused (issue 21: test_one_device.py); the device's own arm counts
    other = {**window("1.0.0", [0] * 19 + [9]), "model_id": "other"}
    r = fleet.client.post(f"/api/v1/devices/{liar}/telemetry", json=other, headers=devices[liar])
    assert r.status_code == 409, r.text
    own = window("1.0.0", [0] * 19 + [9])
    assert fleet.client.post(f"/api/v1/devices/{liar}/telemetry", json=own, headers=devices[liar]).json()[
        "counted"
    ]
    numbers = fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).json()["next"]["numbers"]
    assert numbers["control"]["predictions"] == 9 and numbers["candidate"]["predictions"] == 0


def test_checkin_numbers_are_bounded(running):
    fleet, devices, arms, _ = running
    dev = next(iter(devices))
    path = f"/api/v1/devices/{dev}/checkin"
    # a revert event at 10**400 is skipped (it was a 500: float overflow in math.isfinite)
    body = (
        '{"model_id": "digits", "health": {"events": [{"event": "reverted", "version": "1.1.0", "at": 1'
        + "0" * 400
        + "}]}}"
    )
    r = raw_post(fleet, path, devices[dev], body)
    assert r.status_code == 422 and "health" in r.json()["detail"], r.text
    ok = {"model_id": "digits", "health": {"events": [{"event": "reverted", "version": "1.1.0", "at": -5}]}}
    assert fleet.client.post(path, json=ok, headers=devices[dev]).status_code == 200
    assert fleet.client.get("/api/v1/reverts", headers=fleet.admin).json() == []
    # a verbose agent is not locked out: long strings and lists are cut, not refused
    long = {"event": "reverted", "version": "1.1.0", "at": time.time(), "reason": "x" * 5000, "by": "device"}
    verbose = {"model_id": "digits", "health": {"events": [long], "log": ["line"] * 3000, "note": "y" * 9000}}
    assert fleet.client.post(path, json=verbose, headers=devices[dev]).status_code == 200
    (stored,) = fleet.client.get("/api/v1/reverts", headers=fleet.admin).json()
    assert stored["reason"] == "x" * 500
    row = next(d for d in fleet.client.get("/api/v1/devices", headers=fleet.admin).json() if d["id"] == dev)
    assert len(row["health"]["log"]) == 1000 and len(row["health"]["note"]) == 2000
    for bad, where in [
        ('{"health": {"x": NaN}}', "health"),
        ('{"health": ' + '{"a": ' * 20 + "1" + "}" * 20 + "}", "nested"),
        ('{"runtime": {"machine": "' + "x" * 300 + '"}}', "runtime"),
        ('{"runtime": {"cores": 1' + "0" * 30 + "}}", "runtime"),
        ('{"runtime": {"cpu": {"nested": 1}}}', "runtime"),
        ('{"runtime": {"memory_mb": Infinity}}', "runtime"),
    ]:
        r = raw_post(fleet, path, devices[dev], bad)
        assert r.status_code == 422 and where in r.json()["detail"], (bad[:60], r.text)
    everything_answers(fleet)


def test_huge_rollout_ids_are_404_or_422_never_500(running):
    fleet, *_ = running
    for rid in ("99999999999999999999999", "0", "-1", "2147483648"):
        assert fleet.client.get(f"/api/v1/rollouts/{rid}", headers=fleet.admin).status_code in (404, 422)
        r = fleet.client.post(f"/api/v1/rollouts/{rid}/pause", headers=fleet.admin)
        assert r.status_code in (404, 422), r.text
    assert fleet.client.get("/api/v1/rollouts/2147483647", headers=fleet.admin).status_code == 404


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_any(request, make_settings):
    from liteship.fleet.app import create_app

    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    app = create_app(make_settings(url))
    with LiveServer(app) as server:
        yield server
    app.state.engine.dispose()


def test_simultaneous_registrations_give_one_201_and_409s(live_any):
    barrier, codes = threading.Barrier(30), []

    def register() -> None:
        with httpx.Client(base_url=live_any.url, timeout=30) as c:
            barrier.wait()
            r = c.post("/api/v1/devices/register", json={"device_id": "twin", "enrollment_token": ENROLL})
            codes.append(r.status_code)

    threads = [threading.Thread(target=register) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201] + [409] * 29, codes


def test_dashboard_cookie_is_a_session_of_its_own(sqlite_fleet):
    fleet = sqlite_fleet
    r = fleet.client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert (
        "samesite=strict" in cookie.lower() and "httponly" in cookie.lower() and "Path=/dashboard" in cookie
    )
    value = r.cookies["liteship_dashboard"]
    assert ADMIN not in cookie and len(value) >= 40
    fleet.client.cookies.clear()
    jar = {"liteship_dashboard": value}
    assert fleet.client.get("/dashboard", cookies=jar, follow_redirects=False).status_code == 200
    # it is not an API credential: not for reads, not for writes
    assert fleet.client.get("/api/v1/devices", cookies=jar).status_code == 401
    assert fleet.client.post("/api/v1/rollouts/1/abort", cookies=jar).status_code == 401
    assert fleet.client.get("/api/v1/devices", cookies={"liteship_admin": ADMIN}).status_code == 401
    # the dashboard's own actions accept it, from its own pages only
    assert fleet.client.post("/dashboard/rollouts/5/pause", cookies=jar).status_code == 404
    r = fleet.client.post(
        "/dashboard/rollouts/5/pause", cookies=jar, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    r = fleet.client.post("/dashboard/rollouts/5/pause", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    with fleet.app.state.engine.connect() as c:  # stored hashed, not in the clear
        assert (
            c.execute(
                text("SELECT count(*) FROM dashboard_sessions WHERE token_hash = :v"), {"v": value}
            ).scalar()
            == 0
        )
    # expired: refused
    with fleet.app.state.engine.begin() as c:
        c.execute(text("UPDATE dashboard_sessions SET expires_at = 0"))
    assert fleet.client.get("/dashboard", cookies=jar, follow_redirects=False).status_code == 303
    # logout deletes the session, so a copied cookie stops working
    r = fleet.client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=False)
    value = r.cookies["liteship_dashboard"]
    fleet.client.cookies.clear()
    assert (
        fleet.client.get(
            "/dashboard", cookies={"liteship_dashboard": value}, follow_redirects=False
        ).status_code
        == 200
    )
    fleet.client.post("/dashboard/logout", cookies={"liteship_dashboard": value}, follow_redirects=False)
    assert (
        fleet.client.get(
            "/dashboard", cookies={"liteship_dashboard": value}, follow_redirects=False
        ).status_code
        == 303
    )


def deep_package(keys, tmp_path: Path) -> Path:
    """A package whose manifest is validly signed but nested 100,000 levels deep."""
    from liteship.package.archive import write_archive
    from liteship.package.signing import key_id, load_private_key, load_public_key, sign

    manifest = b"[" * 100_000 + b"]" * 100_000
    kid = key_id(load_public_key(keys["good"].public_path))
    signature = {
        "algorithm": "ed25519",
        "key_id": kid,
        "signature": sign(load_private_key(keys["good"].private_path), manifest),
    }
    out = tmp_path / "deep.lsp"
    out.write_bytes(
        write_archive({"manifest.json": manifest, "signature.json": json.dumps(signature).encode()})
    )
    return out


def test_deeply_nested_signed_manifest_is_refused_cleanly(sqlite_fleet, keys, tmp_path):
    path = deep_package(keys, tmp_path)
    r = sqlite_fleet.publish(path)
    assert r.status_code == 422 and "levels deep" in r.json()["detail"], r.text
    env = {"PATH": "/usr/bin:/bin"}
    for args in (
        ["verify", str(path), "--key", str(keys["good"].public_path)],
        [
            "agent",
            "install",
            str(path),
            "--key",
            str(keys["good"].public_path),
            "--state-dir",
            str(tmp_path / "st"),
        ],
    ):
        p = subprocess.run(
            [sys.executable, "-m", "liteship.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert (
            "levels deep" in p.stderr and "Traceback" not in p.stderr and "internal error" not in p.stderr
        ), p.stderr


def test_front_page_and_offline_api_docs(sqlite_fleet):
    fleet = sqlite_fleet
    page = fleet.client.get("/")
    assert page.status_code == 200 and 'href="/dashboard"' in page.text and 'href="/api/docs"' in page.text
    docs = fleet.client.get("/api/docs")
    assert docs.status_code == 200
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text, docs.text
    js = fleet.client.get("/api/docs/static/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000


def test_buckets_are_the_first_8_bytes_of_sha256_mod_10000():
    import hashlib

    digest = hashlib.sha256(b"pi-07").digest()
    assert device_bucket("pi-07") == int.from_bytes(digest[:8], "big") % 10_000


def test_manifest_depth_is_measured_outside_strings():
    from liteship.package.manifest import MAX_MANIFEST_DEPTH, json_depth

    assert json_depth(b'{"a": [1, {"b": "[[[\\"["}]}') == 3
    assert json_depth(b"[" + b'"[[[[",' * 40 + b"1]", MAX_MANIFEST_DEPTH) <= MAX_MANIFEST_DEPTH
    assert json_depth(b"[" * 40 + b"]" * 40, MAX_MANIFEST_DEPTH) > MAX_MANIFEST_DEPTH


def test_deeply_nested_request_bodies_are_4xx(running):
    fleet, devices, arms, rid = running
    dev = next(iter(devices))
    deep = '{"health": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for path in (f"/api/v1/devices/{dev}/checkin", f"/api/v1/devices/{dev}/telemetry"):
        r = raw_post(fleet, path, devices[dev], deep)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
