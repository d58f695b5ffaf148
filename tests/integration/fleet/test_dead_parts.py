"""Dead parts: the server with its database gone mid-flight answers 503 with a clear message (never 500),
stores nothing half-way, and works again as soon as the database is back.

The database is taken away for real: the throwaway PostgreSQL refuses new connections to the fleet's
database and terminates the open ones (``ALTER DATABASE … ALLOW_CONNECTIONS false`` +
``pg_terminate_backend``), as a restart or failover of the server would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ENROLL, Fleet

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


class Outage:
    """Cut and restore connections to one database of the throwaway server."""

    def __init__(self, url: str) -> None:
        base, self.name = url.rsplit("/", 1)
        self.admin_url = base.replace("+psycopg", "") + "/postgres"

    def _run(self, *sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in sql:
                conn.execute(statement)

    def cut(self) -> None:
        self._run(
            f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'",
        )

    def restore(self) -> None:
        self._run(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")


@pytest.fixture
def pg_fleet(make_settings, postgres_url) -> Iterator[tuple[Fleet, Outage]]:
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    app = create_app(make_settings(postgres_url))
    outage = Outage(postgres_url)
    try:
        with TestClient(app) as client:
            yield Fleet(client, app), outage
    finally:
        outage.restore()
        app.state.engine.dispose()


def window(n: int) -> dict[str, Any]:
    now = time.time()
    return {
        "window_id": f"outage-{n}",
        "model_id": "digits",
        "model_version": "1.0.0",
        "started": now - 30,
        "ended": now,
        "inferences": 10,
        "confidence_hist": [0] * 19 + [10],
    }


def assert_503(r: Any) -> None:
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert "database is unavailable" in detail and "Retry in" in detail, detail
    assert "postgres@" not in detail  # no connection URL in an answer
    assert r.headers["retry-after"].isdigit()


def test_database_gone_mid_flight_is_503_and_recovers(pg_fleet, make_package):
    fleet, outage = pg_fleet
    assert fleet.publish(make_package("digits", "1.0.0")).status_code == 201
    device = fleet.register("dead-db-1")
    assert fleet.checkin("dead-db-1", device, "1.0.0").status_code == 200
    telemetry = "/api/v1/devices/dead-db-1/telemetry"
    assert fleet.client.post(telemetry, json=window(1), headers=device).status_code == 201

    outage.cut()
    assert_503(fleet.checkin("dead-db-1", device, "1.0.0"))  # the hot path (its own connection)
    assert_503(fleet.client.post(telemetry, json=window(2), headers=device))
    assert_503(fleet.client.get("/api/v1/devices", headers=fleet.admin))
    assert_503(fleet.client.get("/api/v1/models", headers=fleet.admin))
    assert_503(
        fleet.client.post(
            "/api/v1/devices/register", json={"device_id": "dead-db-2", "enrollment_token": ENROLL}
        )
    )
    assert_503(fleet.publish(make_package("digits", "1.1.0")))
    assert fleet.client.get("/healthz").status_code == 200  # liveness does not need the database

    outage.restore()
    assert fleet.checkin("dead-db-1", device, "1.0.0").status_code == 200
    # the window refused during the outage is posted again by the agent (its spool) and stored once
    assert fleet.client.post(telemetry, json=window(2), headers=device).status_code == 201
    stored = fleet.client.get(telemetry, headers=fleet.admin).json()
    assert sorted(w["window_id"] for w in stored) == ["outage-1", "outage-2"]
    # the publish refused during the outage left nothing behind: it succeeds now, once
    assert fleet.publish(make_package("digits", "1.1.0")).status_code == 201
    releases = fleet.client.get("/api/v1/models", headers=fleet.admin).json()
    assert [r["version"] for m in releases for r in m["releases"]] == ["1.0.0", "1.1.0"]
    assert fleet.register("dead-db-2")
