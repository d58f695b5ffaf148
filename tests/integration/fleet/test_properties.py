"""Property-based tests (Hypothesis) of what a device can send: any JSON gives 2xx or 4xx, never 5xx,
and the dashboard, drift and rollout evaluation still answer afterwards (issue 10)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ADMIN, ENROLL, production_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# any JSON value, including what Python's json module accepts beyond the standard (NaN, ±Infinity)
# and integers far beyond a double (10**400) or a 64-bit column
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**420), max_value=10**420)
    | st.integers(min_value=-3, max_value=2**33)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)
counts = st.lists(st.integers(min_value=-2, max_value=10**12) | json_values, min_size=0, max_size=25)
WINDOW_FIELDS = [
    "window_id",
    "model_id",
    "model_version",
    "started",
    "ended",
    "inferences",
    "errors",
    "rollbacks",
    "out_of_range_fraction",
    "confidence_hist",
    "latency_hist",
    "latency_edges_ms",
    "dropped_windows",
]


def good_window(version: str, n: int) -> dict[str, Any]:
    now = time.time()
    return {
        "window_id": f"p-{n}-{time.time_ns()}",
        "model_id": "digits",
        "model_version": version,
        "started": now - 30,
        "ended": now,
        "inferences": 20,
        "confidence_hist": [1] * 20,
        "latency_hist": [0, 20, 0],
        "latency_edges_ms": [1.0, 5.0],
    }


window_changes = st.dictionaries(
    st.sampled_from(WINDOW_FIELDS),
    json_values | counts | st.floats(min_value=-1e12, max_value=1e12),
    max_size=4,
)
events = st.lists(
    st.fixed_dictionaries(
        {"event": st.sampled_from(["reverted", "committed"]) | json_values},
        optional={
            "version": st.sampled_from(["1.0.0", "1.1.0", ""]) | json_values,
            "to": json_values,
            "reason": json_values,
            "by": st.sampled_from(["server", "device"]) | json_values,
            "at": st.floats(min_value=0, max_value=5e9) | json_values,
        },
    )
    | json_values,
    max_size=5,
)
checkins = st.fixed_dictionaries(
    {},
    optional={
        "model_id": st.just("digits") | json_values,
        "model_version": st.sampled_from(["1.0.0", "1.1.0"]) | json_values,
        "runtime": st.dictionaries(st.text(max_size=70), json_values, max_size=8) | json_values,
        "health": st.fixed_dictionaries({}, optional={"events": events, "pending": json_values})
        | st.dictionaries(st.text(max_size=8), json_values, max_size=4)
        | json_values,
    },
)


@pytest.fixture(scope="module")
def world(tmp_path_factory, keys, make_package):
    """One server (SQLite) with a running rollout and two devices, shared by every example."""
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    # hundreds of examples through three devices: the per-device rate limits (tested in
    # test_rate_limits.py) are raised so that every example reaches the validation it explores
    settings_ = production_settings(
        tmp_path_factory.mktemp("prop"), keys, min_devices=1, min_predictions=50,
        limit_checkins_per_minute=10**6, limit_windows_per_minute=10**6, limit_events_per_hour=10**6,
    )  # fmt: skip
    app = create_app(settings_)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app) as client:
        for version in ("1.0.0", "1.1.0"):
            body = make_package("digits", version).read_bytes()
            assert client.post("/api/v1/releases", content=body, headers=admin).status_code == 201
        devices = {}
        for dev in ("prop-a", "prop-b", "prop-c"):
            r = client.post("/api/v1/devices/register", json={"device_id": dev, "enrollment_token": ENROLL})
            devices[dev] = {"Authorization": f"Bearer {r.json()['token']}"}
        r = client.post(
            "/api/v1/rollouts",
            json={"model_id": "digits", "candidate_version": "1.1.0", "stages": [50, 100]},
            headers=admin,
        )
        rid = r.json()["id"]
        versions = {}
        for dev, headers in devices.items():
            path = f"/api/v1/devices/{dev}/checkin"
            a = client.post(path, json={"model_id": "digits"}, headers=headers).json()
            client.post(path, json={"model_id": "digits", "model_version": a["version"]}, headers=headers)
            versions[dev] = a["version"]
        yield client, admin, devices, versions, rid
    app.state.engine.dispose()


def post_raw(client, path: str, headers: dict[str, str], body: Any):
    text = json.dumps(body, allow_nan=True)
    return client.post(path, content=text, headers={**headers, "content-type": "application/json"})


def still_answers(client, admin, rid) -> None:
    assert client.get("/dashboard", headers=admin).status_code == 200
    assert client.get("/api/v1/drift", params={"model_id": "digits"}, headers=admin).status_code == 200
    r = client.get(f"/api/v1/rollouts/{rid}", headers=admin)
    assert r.status_code == 200, r.text
    if r.json()["state"] == "running":
        assert client.post(f"/api/v1/rollouts/{rid}/evaluate", headers=admin).status_code == 200
    assert client.get("/api/v1/devices", headers=admin).status_code == 200


_n = iter(range(10**9))
PROFILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROFILE
@given(changes=window_changes, dev=st.sampled_from(["prop-a", "prop-b", "prop-c"]))
def test_any_telemetry_window_is_2xx_or_4xx(world, changes, dev):
    client, admin, devices, versions, rid = world
    body = {**good_window(versions[dev], next(_n)), **changes}
    r = post_raw(client, f"/api/v1/devices/{dev}/telemetry", devices[dev], body)
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert r.json()["detail"], r.text


@PROFILE
@given(body=json_values)
def test_any_json_as_telemetry_is_4xx(world, body):
    client, admin, devices, versions, rid = world
    r = post_raw(client, "/api/v1/devices/prop-a/telemetry", devices["prop-a"], body)
    assert 400 <= r.status_code < 500 or r.status_code in (200, 201), r.text


@PROFILE
@given(body=checkins, dev=st.sampled_from(["prop-a", "prop-b", "prop-c"]))
def test_any_checkin_is_2xx_or_4xx(world, body, dev):
    client, admin, devices, versions, rid = world
    r = post_raw(client, f"/api/v1/devices/{dev}/checkin", devices[dev], body)
    assert r.status_code < 500, (body, r.text)


def test_everything_still_answers_after_the_examples(world):
    """Runs after the properties in this module (file order): nothing they stored broke a page."""
    client, admin, devices, versions, rid = world
    still_answers(client, admin, rid)
    stored = sum(len(client.get(f"/api/v1/devices/{d}/telemetry", headers=admin).json()) for d in devices)
    assert stored > 0  # the examples reached storage and evaluation, not only the schema
    # the devices keep working with well-formed input
    for dev, headers in devices.items():
        path = f"/api/v1/devices/{dev}/checkin"
        assert client.post(path, json={"model_id": "digits"}, headers=headers).status_code == 200
