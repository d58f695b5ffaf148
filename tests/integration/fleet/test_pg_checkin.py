"""PostgreSQL check-ins on the event loop (``liteship.fleet.pg_checkin``, issue 24.6), through a real
uvicorn server on loopback and the throwaway PostgreSQL: the common check-in is answered on the loop's
async connections with the same answer as the thread-pool path; every unusual one takes that path; the
database going away mid-run gives the route's clean 503, and check-ins are back on the loop once it
returns (the connections it cut are replaced)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ADMIN, ENROLL, LiveServer
from .test_outages import Outage, assert_503

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
AUTH = {"Authorization": f"Bearer {ADMIN}"}


class Server:
    def __init__(self, live: LiveServer) -> None:
        self.live, self.app, self.url = live, live.app, live.url
        self.http = httpx.Client(base_url=live.url, timeout=30)

    @property
    def checkins(self) -> Any:
        return self.app.state.checkins

    def register(self, device_id: str, model_id: str | None = "digits", tags: tuple[str, ...] = ()) -> dict:
        body = {"device_id": device_id, "enrollment_token": ENROLL, "model_id": model_id, "tags": list(tags)}
        r = self.http.post("/api/v1/devices/register", json=body)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def checkin(self, device_id: str, headers: dict, **body: Any) -> httpx.Response:
        payload = {"model_id": "digits", "model_version": "1.0.0", "runtime": {"name": "litert"}}
        payload.update(body)
        return self.http.post(f"/api/v1/devices/{device_id}/checkin", json=payload, headers=headers)

    def device(self, device_id: str) -> dict:
        r = self.http.get("/api/v1/devices", headers=AUTH)
        assert r.status_code == 200, r.text
        return next(d for d in r.json() if d["id"] == device_id)


def _serve(make_settings: Any, url: str, **overrides: Any) -> Any:
    from liteship.fleet.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(make_settings(url, **overrides))


@pytest.fixture
def two_servers(make_settings, postgres_url, make_package) -> Iterator[tuple[Server, Server]]:
    """Two workers on one database: check-ins on the event loop (the default) and in the thread pool
    (``pg_checkin_connections=0``, the path as it was), with releases 1.0.0 and 1.1.0 published."""
    on_loop = _serve(make_settings, postgres_url)
    threads = _serve(make_settings, postgres_url, pg_checkin_connections=0)
    with LiveServer(on_loop) as a, LiveServer(threads) as b:
        fast, slow = Server(a), Server(b)
        for version in ("1.0.0", "1.1.0"):
            path = make_package("digits", version)
            r = fast.http.post("/api/v1/releases", content=path.read_bytes(), headers=AUTH)
            assert r.status_code == 201, r.text
        yield fast, slow
        fast.http.close()
        slow.http.close()
    for app in (on_loop, threads):
        app.state.engine.dispose()


def test_common_checkins_run_on_the_loop_and_answer_as_the_thread_pool(two_servers):
    fast, slow = two_servers
    assert fast.checkins.pool is not None and slow.checkins.pool is None
    r = fast.http.post(
        "/api/v1/rollouts",
        json={"model_id": "digits", "candidate_version": "1.1.0", "stages": [50, 100], "tags": ["ring=a"]},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    r = fast.http.put("/api/v1/cohorts/ring=b/windows", json={"windows": ["01:00-02:00"]}, headers=AUTH)
    assert r.status_code == 200, r.text
    devices = {f"pi-{n}": (("ring=a",) if n % 2 else ("ring=b",)) for n in range(12)}
    headers = {d: fast.register(d, tags=tags) for d, tags in devices.items()}
    profiles = [{"name": "litert"}, {"name": "litert", "machine": "aarch64", "isa": ["dotprod"]}]

    for round_ in range(3):
        for n, (device, h) in enumerate(headers.items()):
            runtime = profiles[(n + round_) % 2]
            on_loop_before = fast.checkins.on_loop
            a = fast.checkin(device, h, runtime=runtime, health={"status": "ok", "round": round_})
            assert a.status_code == 200, a.text
            if round_ > 0:  # the first check-in of a worker loads its plan on the full path
                assert fast.checkins.on_loop == on_loop_before + 1
            b = slow.checkin(device, h, runtime=runtime, health={"status": "ok", "round": round_})
            assert b.status_code == 200, b.text
            assert a.json() == b.json()
            row = fast.device(device) if n == 0 else None
            if row is not None:  # written through: what the device reported on the loop's path
                assert row["runtime"] == runtime and row["health"]["round"] == round_
    assert fast.checkins.pool.opened >= 1


def test_unusual_checkins_take_the_full_path_with_the_same_answers(two_servers):
    """A claim of another model (refused, counted), revert events, no model claimed, an unknown device's
    token, a plan changed by another worker: all answered as the thread-pool path answers them."""
    fast, slow = two_servers
    h = fast.register("pi-odd")
    assert fast.checkin("pi-odd", h).status_code == 200  # loads the plan
    assert fast.checkin("pi-odd", h).status_code == 200
    on_loop = fast.checkins.on_loop
    assert on_loop >= 1

    r = fast.checkin("pi-odd", h, model_id="other", model_version="9.9.9")
    assert r.status_code == 200, r.text
    assert r.json()["model_id"] == "digits"
    assert fast.device("pi-odd")["refused_reports"] == 1  # counted, as the full path does
    assert fast.device("pi-odd")["model_version"] == "1.0.0"

    event = {"event": "reverted", "version": "1.1.0", "to": "1.0.0", "reason": "crash", "at": time.time()}
    r = fast.checkin("pi-odd", h, health={"status": "ok", "events": [event]})
    assert r.status_code == 200, r.text
    reverts = fast.http.get("/api/v1/devices/pi-odd/reverts", headers=AUTH).json()
    assert [(e["version"], e["to_version"]) for e in reverts] == [("1.1.0", "1.0.0")]

    r = fast.checkin("pi-odd", h, model_id=None)
    assert r.status_code == 200, r.text
    assert fast.checkins.on_loop == on_loop  # none of these ran on the loop's connections

    # another worker starts a rollout: the next check-in here sees it (the plan version differs, so
    # the conditional UPDATE writes nothing and the full path reloads the plan)
    r = slow.http.post(
        "/api/v1/rollouts",
        json={"model_id": "digits", "candidate_version": "1.1.0", "stages": [100]},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    a = fast.checkin("pi-odd", h)
    assert (a.json()["version"], a.json()["arm"]) == ("1.1.0", "candidate")
    assert fast.checkin("pi-odd", h).json() == slow.checkin("pi-odd", h).json()
    assert fast.checkins.on_loop == on_loop + 1  # the plan is cached again: back on the loop

    r = fast.http.post("/api/v1/devices/pi-odd/checkin", json={"model_id": "digits"}, headers={
        "Authorization": "Bearer not-a-token-of-anyone-0123456789"})  # fmt: skip
    assert r.status_code == 401, r.text
    # a NUL escape in the JSON health (PostgreSQL's json type keeps it): the same answer on both paths
    r = fast.checkin("pi-odd", h, health={"status": "nul\u0000inside"})
    s = slow.checkin("pi-odd", h, health={"status": "nul\u0000inside"})
    assert (r.status_code, r.json()) == (s.status_code, s.json())


@pytest.fixture
def pg_live(make_settings, postgres_url, make_package) -> Iterator[tuple[Server, Outage]]:
    app = _serve(make_settings, postgres_url)
    outage = Outage(postgres_url)
    try:
        with LiveServer(app) as live:
            server = Server(live)
            path = make_package("digits", "1.0.0")
            assert (
                server.http.post("/api/v1/releases", content=path.read_bytes(), headers=AUTH).status_code
                == 201
            )
            yield server, outage
            server.http.close()
    finally:
        outage.restore()
        app.state.engine.dispose()


def test_database_gone_mid_run_is_a_clean_503_and_checkins_return_to_the_loop(pg_live):
    server, outage = pg_live
    devices = {f"dead-{n}": server.register(f"dead-{n}") for n in range(4)}
    for _ in range(2):
        for device, h in devices.items():
            assert server.checkin(device, h).status_code == 200
    assert server.checkins.on_loop >= 4

    outage.cut()  # the server refuses the database and terminates every connection to it
    for _ in range(3):
        for device, h in devices.items():
            started = time.monotonic()
            r = server.checkin(device, h)
            assert_503(r)  # never a 500, never a hang
            assert time.monotonic() - started < 10
    on_loop = server.checkins.on_loop

    outage.restore()
    for device, h in devices.items():
        r = server.checkin(device, h)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "1.0.0"
    deadline = time.monotonic() + 15  # a refused connect keeps the loop's path off for a second
    while server.checkins.on_loop == on_loop and time.monotonic() < deadline:
        for device, h in devices.items():
            assert server.checkin(device, h).status_code == 200
        time.sleep(0.2)
    assert server.checkins.on_loop > on_loop, "check-ins never returned to the event loop's connections"
    assert server.device("dead-0")["model_version"] == "1.0.0"


def test_backends_killed_while_the_database_stays_up_cost_no_error(pg_live):
    """A restart or failover that cut the pooled connections but lets new ones in: every check-in still
    succeeds (the cut connection is replaced; that one check-in takes the full path, which reconnects)."""
    server, outage = pg_live
    h = server.register("cut-1")
    for _ in range(3):
        assert server.checkin("cut-1", h).status_code == 200
    opened = server.checkins.pool.opened
    outage.cut()
    outage.restore()
    for _ in range(5):
        r = server.checkin("cut-1", h)
        assert r.status_code == 200, r.text
    assert server.checkins.pool.opened > opened  # the cut connection was replaced


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_database_server_stopped_and_started_again(make_settings, make_package, mode):
    """The PostgreSQL server itself stops (``fast``: clients disconnected; ``immediate``: as a crash) with
    the API running: check-ins get the clean 503 at once, and once the server is started again they
    succeed and return to the event loop's (new) connections."""
    import psycopg

    from .conftest import ThrowawayPostgres

    pg = ThrowawayPostgres()
    try:
        with psycopg.connect(pg.url.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE fleet")
        app = _serve(make_settings, f"{pg.url}/fleet")
        with LiveServer(app) as live:
            server = Server(live)
            path = make_package("digits", "1.0.0")
            r = server.http.post("/api/v1/releases", content=path.read_bytes(), headers=AUTH)
            assert r.status_code == 201, r.text
            h = server.register("stop-1")
            for _ in range(3):
                assert server.checkin("stop-1", h).status_code == 200
            assert server.checkins.on_loop >= 1

            pg.stop(mode)
            for _ in range(4):
                started = time.monotonic()
                assert_503(server.checkin("stop-1", h))
                assert time.monotonic() - started < 10
            on_loop = server.checkins.on_loop

            pg.start()
            deadline = time.monotonic() + 20
            while server.checkins.on_loop == on_loop and time.monotonic() < deadline:
                r = server.checkin("stop-1", h)
                assert r.status_code == 200, r.text
                time.sleep(0.2)
            assert server.checkins.on_loop > on_loop
            server.http.close()
        app.state.engine.dispose()
    finally:
        pg.remove()
