"""Dead parts: the server with its database gone mid-flight answers 503 with a clear message (never 500),
stores nothing half-way, and works again as soon as the database is back; the agent with the server
gone keeps its windows, backs off, and a window the server refuses for good does not block the rest.

The database is taken away for real: the throwaway PostgreSQL refuses new connections to the fleet's
database and terminates the open ones (``ALTER DATABASE … ALLOW_CONNECTIONS false`` +
``pg_terminate_backend``), as a restart or failover of the server would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ADMIN, ENROLL, Fleet, free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


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


@pytest.mark.postgres
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


def test_a_refused_window_is_set_aside_and_the_rest_are_sent(live_server, tmp_path):
    """A window the server will never take (its clock two days ahead) used to block the spool: every
    flush re-sent it first and stopped, so nothing behind it reached the server."""
    import httpx

    from liteship.agent.client import DeviceClient
    from liteship.agent.telemetry import Spool
    from liteship.errors import ServerError

    r = httpx.post(
        f"{live_server.url}/api/v1/devices/register",
        json={"device_id": "spool-1", "enrollment_token": ENROLL},
    )
    token = r.json()["token"]
    spool = Spool(tmp_path / "spool")
    future = {**window(1), "started": time.time() + 2 * 86_400, "ended": time.time() + 2 * 86_400 + 30}
    spool.put(future)
    spool.put(window(2))
    spool.put(window(3))

    # server gone: nothing is sent, nothing is lost, nothing is set aside
    gone = DeviceClient(f"http://127.0.0.1:{free_port()}", "spool-1", token, timeout=2.0)
    with pytest.raises(ServerError):
        spool.flush(gone.post_window)
    assert len(spool) == 3 and spool.refused == 0

    refusals: list[str] = []
    client = DeviceClient(live_server.url, "spool-1", token, timeout=5.0)
    assert spool.flush(client.post_window, on_refused=lambda w, why: refusals.append(why)) == 2
    assert len(spool) == 0 and spool.refused == 1
    assert "after the server's clock" in refusals[0] and "HTTP 422" in refusals[0]
    assert [p.name.endswith("outage-1.json") for p in (spool.root / "refused").iterdir()] == [True]
    stored = httpx.get(
        f"{live_server.url}/api/v1/devices/spool-1/telemetry", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert sorted(w["window_id"] for w in stored) == ["outage-2", "outage-3"]


def test_a_truncated_spool_state_file_counts_nothing_and_breaks_nothing(tmp_path):
    from liteship.agent.telemetry import Spool

    spool = Spool(tmp_path / "spool")
    spool.put(window(1))
    for damaged in ('{"dropped": 3', '{"dropped": "many"}', "[1, 2]", ""):
        (spool.root / "spool-state.json").write_text(damaged)
        sent: list[dict] = []
        assert spool.dropped == 0 and spool.refused == 0
        spool.put(window(2))  # the next windows are spooled and sent as usual
        assert spool.flush(sent.append) == 2 and [w["window_id"] for w in sent] == ["outage-1", "outage-2"]
        spool.put(window(1))


def test_the_agent_backs_off_while_the_server_is_gone(live_server, tmp_path, keys):
    """Check-ins against a dead server stretch the poll interval (x2 per failure, at most x8), honour a
    bounded Retry-After, and the first good check-in resets it; the model slot is never touched."""
    from liteship.agent.client import DeviceClient
    from liteship.fleet.settings import Settings

    from .services import agent_updater

    settings_: Settings = live_server.app.state.settings
    updater = agent_updater(
        live_server.url, settings_.data_dir, tmp_path / "backoff-1", keys["good"].public_path, enroll=ENROLL
    )
    updater.interval, updater.jitter = 10.0, 0.0
    alive = updater.client
    assert updater.next_delay() == 10.0
    updater.client = DeviceClient(f"http://127.0.0.1:{free_port()}", "backoff-1", "t", timeout=1.0)
    delays = []
    for _ in range(6):
        assert updater.poll_once()["action"] == "offline"
        delays.append(updater.next_delay())
    assert delays == [10.0, 20.0, 40.0, 80.0, 80.0, 80.0]
    updater.failed_checkins, updater.retry_after = 1, 30.0  # a 503's Retry-After: 30
    assert updater.next_delay() == 30.0
    updater.retry_after = 1e9  # a hostile server cannot park the device beyond the backoff's ceiling
    assert updater.next_delay() == 80.0
    assert updater.store.current_version() is None  # nothing installed, nothing removed
    state = updater.store.state()["last_checkin"]
    assert state["ok"] is False and state["failures_in_a_row"] == 6 and "unreachable" in state["error"]
    updater.client = alive
    assert updater.poll_once()["action"] != "offline"
    assert updater.next_delay() == 10.0
