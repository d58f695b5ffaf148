"""Issue 21 item 8: one device cannot fill the database. Per-device rate limits answer 429 with
Retry-After, store nothing of the refused request, and the tables stop growing (real app, real SQLite)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from liteship.fleet.models import Revert, TelemetryWindow

from .conftest import Fleet


@pytest.fixture
def limited(make_settings) -> Iterator[Fleet]:
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    app = create_app(
        make_settings(limit_checkins_per_minute=30, limit_windows_per_minute=20, limit_events_per_hour=100)
    )
    with TestClient(app) as client:
        yield Fleet(client, app)
    app.state.engine.dispose()


def rows(fleet: Fleet, table: Any) -> int:
    with fleet.app.state.sessionmaker() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def revert_flood(n: int, start: int) -> dict[str, Any]:
    events = [
        {"event": "reverted", "version": "9.9.9", "to": "1.0.0", "reason": "x", "at": 1e9 + start + i}
        for i in range(n)
    ]  # unique `at`: none is a duplicate
    return {"model_id": "digits", "model_version": None, "health": {"status": "ok", "events": events}}


def window(n: int) -> dict[str, Any]:
    now = time.time()
    return {
        "window_id": f"flood-{n}",
        "model_id": "digits",
        "started": now - 30,
        "ended": now,
        "inferences": 20,
        "confidence_hist": [1] * 20,
    }


def test_a_device_flooding_reverts_gets_429_and_the_table_stops_growing(limited):
    headers = limited.register("flooder")
    path = "/api/v1/devices/flooder/checkin"
    answers = [limited.client.post(path, json=revert_flood(100, 100 * i), headers=headers) for i in range(5)]
    assert answers[0].status_code == 200, answers[0].text  # the first 100 events fit the hour's bucket
    for r in answers[1:]:
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1 and "rate limit" in r.json()["detail"]
    stored = rows(limited, Revert)
    assert stored == 100
    for i in range(5, 20):  # keeps flooding: nothing more is stored
        assert limited.client.post(path, json=revert_flood(100, 100 * i), headers=headers).status_code == 429
    assert rows(limited, Revert) == stored
    # another device is not affected by this one's limits
    other = limited.register("honest")
    assert limited.checkin("honest", other).status_code == 200


def test_a_device_flooding_telemetry_gets_429_and_the_table_stops_growing(limited):
    headers = limited.register("chatty")
    path = "/api/v1/devices/chatty/telemetry"
    codes = [limited.client.post(path, json=window(i), headers=headers).status_code for i in range(60)]
    assert codes[:20] == [201] * 20 and set(codes[20:]) == {429}, codes
    r = limited.client.post(path, json=window(999), headers=headers)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert rows(limited, TelemetryWindow) == 20
    # check-ins have their own bucket: the device still gets its assignment
    assert limited.checkin("chatty", headers).status_code == 200


def test_check_ins_are_limited_per_minute_and_refill(limited):
    from liteship.fleet.limits import RateLimiter

    headers = limited.register("poller")
    codes = [limited.checkin("poller", headers).status_code for _ in range(35)]
    assert codes[:30] == [200] * 30 and set(codes[30:]) == {429}, codes
    limiter: RateLimiter = limited.app.state.limiter
    # the bucket refills at 30 a minute: 2 s of clock later, one more check-in fits
    assert limiter.take("poller", checkins=1, now=time.monotonic() + 2.1) is None


def test_bytes_per_day_are_limited(make_settings):
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    app = create_app(make_settings(limit_bytes_per_day=1 << 16))
    with TestClient(app) as client:
        fleet = Fleet(client, app)
        headers = fleet.register("big")
        body = {"model_id": "digits", "health": {"status": "ok", "note": "x" * 20_000}}
        codes = [
            client.post("/api/v1/devices/big/checkin", json=body, headers=headers).status_code
            for _ in range(5)
        ]
        assert codes[:3] == [200] * 3 and codes[3:] == [429, 429], codes
    app.state.engine.dispose()
