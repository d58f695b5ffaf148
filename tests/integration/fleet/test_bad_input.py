"""Bad input to every endpoint: a 4xx with a clear message, and nothing stored."""

from __future__ import annotations

import pytest


@pytest.fixture
def dev(sqlite_fleet, make_package):
    assert sqlite_fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    return sqlite_fleet, sqlite_fleet.register("pi-1")


def _count(fleet, table: str) -> int:
    from sqlalchemy import text

    with fleet.app.state.engine.connect() as c:
        return c.execute(text(f"SELECT count(*) FROM {table}")).scalar()


GOOD_WINDOW = {
    "window_id": "w1",
    "started": 1.0,
    "ended": 2.0,
    "inferences": 5,
    "confidence_hist": [0] * 19 + [5],
}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/v1/devices/pi-1/telemetry", b"{not json", "JSON"),
        ("/api/v1/devices/pi-1/telemetry", b"[]", "invalid request"),
        ("/api/v1/devices/pi-1/telemetry", {**GOOD_WINDOW, "inferences": "many"}, "inferences"),
        ("/api/v1/devices/pi-1/telemetry", {**GOOD_WINDOW, "inferences": -1}, "inferences"),
        ("/api/v1/devices/pi-1/telemetry", {**GOOD_WINDOW, "confidence_hist": [1, 2]}, "confidence_hist"),
        ("/api/v1/devices/pi-1/telemetry", {**GOOD_WINDOW, "window_id": "../../x"}, "window_id"),
        ("/api/v1/devices/pi-1/telemetry", {**GOOD_WINDOW, "ended": 0.5}, "ends before it starts"),
        (
            "/api/v1/devices/pi-1/telemetry",
            {**GOOD_WINDOW, "confidence_hist": [-1] * 20},
            "greater than or equal to 0",
        ),
        (
            "/api/v1/devices/pi-1/telemetry",
            {**GOOD_WINDOW, "latency_hist": [1, 2], "latency_edges_ms": [1, 2]},
            "bins",
        ),
        ("/api/v1/devices/pi-1/checkin", {"model_version": 3}, "model_version"),
        ("/api/v1/devices/pi-1/checkin", {"surprise": 1}, "surprise"),
        ("/api/v1/devices/pi-1/checkin", {"model_id": "../etc"}, "model_id"),
    ],
)
def test_device_endpoints(dev, path, body, message):
    fleet, headers = dev
    kwargs = (
        {"content": body, "headers": {**headers, "content-type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body, "headers": headers}
    )
    r = fleet.client.post(path, **kwargs)
    assert 400 <= r.status_code < 500, r.text
    assert message in r.json()["detail"], r.json()
    assert _count(fleet, "telemetry_windows") == 0


def test_admin_endpoints(dev):
    fleet, _ = dev
    a = fleet.admin
    cases = [
        ("POST", "/api/v1/rollouts", {"json": {"model_id": "digits"}}, 422, "candidate_version"),
        (
            "POST",
            "/api/v1/rollouts",
            {"json": {"model_id": "digits", "candidate_version": "1.0.0", "stages": "x"}},
            422,
            "stages",
        ),
        ("POST", "/api/v1/rollouts/abc/pause", {}, 422, "rollout_id"),
        ("POST", "/api/v1/rollouts/1/explode", {}, 422, "action"),
        ("GET", "/api/v1/models/digits/releases/9.9.9", {}, 404, "no release"),
        ("GET", "/api/v1/drift?model_id=nope", {}, 404, "no model"),
        ("GET", "/api/v1/drift?model_id=digits&period_s=-1", {}, 422, "period_s"),
        ("POST", "/api/v1/releases", {"content": b""}, 400, "empty body"),
        ("POST", "/api/v1/releases?channel=../x", {"content": b"x"}, 422, "channel"),
    ]
    for method, path, kwargs, code, message in cases:
        r = fleet.client.request(method, path, headers=a, **kwargs)
        assert r.status_code == code and message in r.json()["detail"], (path, r.status_code, r.text)
    assert _count(fleet, "rollouts") == 0 and _count(fleet, "releases") == 1


def test_register_bad_ids(sqlite_fleet):
    for device_id in ("", "../x", "a" * 200, "spaces are bad"):
        r = sqlite_fleet.client.post(
            "/api/v1/devices/register", json={"device_id": device_id, "enrollment_token": "x"}
        )
        assert r.status_code == 422 and "device_id" in r.json()["detail"]
    assert _count(sqlite_fleet, "devices") == 0


def test_oversized_bodies(dev, make_settings):
    fleet, headers = dev
    big = b'{"window_id": "w", "pad": "' + b"x" * (2 << 20) + b'"}'
    r = fleet.client.post(
        "/api/v1/devices/pi-1/telemetry", content=big, headers={**headers, "content-type": "application/json"}
    )
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(40):
            yield b"x" * 65536

    r = fleet.client.post("/api/v1/devices/pi-1/checkin", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert _count(fleet, "telemetry_windows") == 0


def test_oversized_package(make_settings, make_package):
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    app = create_app(make_settings(max_package_bytes=1000))
    with TestClient(app) as c:
        r = c.post(
            "/api/v1/releases",
            content=make_package().read_bytes(),
            headers={"Authorization": f"Bearer {app.state.settings.admin_token}"},
        )
    assert r.status_code == 413 and "over 1000 bytes" in r.json()["detail"]
    assert not list((app.state.settings.data_dir / "tmp").iterdir())


def test_duplicate_window_is_idempotent(dev):
    fleet, headers = dev
    first = fleet.client.post("/api/v1/devices/pi-1/telemetry", json=GOOD_WINDOW, headers=headers)
    again = fleet.client.post("/api/v1/devices/pi-1/telemetry", json=GOOD_WINDOW, headers=headers)
    assert (first.status_code, first.json()["duplicate"]) == (201, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert _count(fleet, "telemetry_windows") == 1


def test_settings_refuse_weak_secrets_in_production_without_warnings(tmp_path):
    import warnings

    from liteship.errors import UsageError
    from liteship.fleet.settings import DEFAULT_SECRET, Settings

    with pytest.raises(UsageError, match="admin_token is the well-known default 'changethis'") as e:
        Settings.from_env(environment="production", data_dir=tmp_path, admin_token=DEFAULT_SECRET)
    assert "pydantic" not in str(e.value) and "input_value" not in str(e.value)
    with pytest.raises(UsageError, match="enrollment_token is shorter than 16"):
        Settings.from_env(environment="production", data_dir=tmp_path, enrollment_token="short")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Python warning on the console, in any environment
        Settings(data_dir=tmp_path, admin_token=DEFAULT_SECRET)  # development on loopback: accepted
        Settings.from_env(environment="production", data_dir=tmp_path)  # unset: generated at start
