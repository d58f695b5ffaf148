"""Issue 21 item 8: a real agent process against the real fleet server (uvicorn on loopback) whose
per-device window limit it exceeds. The agent must honour the ``429``'s ``Retry-After`` (no telemetry
request before it has passed, and uploads resume after it), keep checking in meanwhile, and lose no
window: once the limit allows, the spool drains and nothing was dropped or set aside."""

from __future__ import annotations

import signal
import threading
import time
import warnings
from typing import Any

import httpx
import pytest
from agent_e2e_conftest import ADMIN, ENROLL, agent_cmd, free_port, wait_for

from liteship.agent.telemetry import Spool

SLACK_S = 0.25  # clock granularity between the server's answer and the next request


class Recorder:
    """ASGI wrapper: when each telemetry POST and check-in was answered, with status and Retry-After."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[float, str, int, int | None]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        kind = "telemetry" if path.endswith("/telemetry") else "checkin" if path.endswith("/checkin") else ""
        if scope["type"] != "http" or scope.get("method") != "POST" or not kind:
            return await self.app(scope, receive, send)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                retry = headers.get(b"retry-after")
                with self.lock:
                    self.seen.append(
                        (time.monotonic(), kind, message["status"], int(retry) if retry else None)
                    )
            await send(message)

        await self.app(scope, receive, recording_send)

    def of(self, kind: str) -> list[tuple[float, int, int | None]]:
        with self.lock:
            return [(t, s, r) for t, k, s, r in self.seen if k == kind]


@pytest.fixture
def limited_server(tmp_path, keys):
    import uvicorn

    from liteship.fleet.app import create_app
    from liteship.fleet.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "fleet", admin_token=ADMIN, enrollment_token=ENROLL,
        trusted_keys=[keys.public_path], limit_checkins_per_minute=100_000, limit_windows_per_minute=6,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(settings)
    recorder = Recorder(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(url), timeout=60)
    yield url, app, recorder
    server.should_exit = True
    thread.join(timeout=20)
    app.state.engine.dispose()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_agent_honours_retry_after_and_loses_no_window(
    limited_server, packages, keys, digit_pngs, cli, tmp_path
):
    import subprocess

    from liteship.fleet.limits import Limits, RateLimiter

    url, app, recorder = limited_server
    r = httpx.post(
        f"{url}/api/v1/releases", content=packages["1.0.0"].read_bytes(), params={"channel": "stable"},
        headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    state = tmp_path / "state"
    r = cli(
        "agent", "enroll", "--state-dir", str(state), "--server", url, "--enrollment-token", ENROLL,
        "--device-id", "limited-1", "--model-id", "digits", "--key", keys.public_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    args = agent_cmd(state, digit_pngs, "--window", "0.3", "--health-inferences", "10", "--sink", "stdout")
    log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115 - closed in finally
    agent = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    try:
        first = wait_for(
            lambda: next((x for x in recorder.of("telemetry") if x[1] == 429), None), timeout=120
        )
        refused_at, _, retry_after = first
        assert retry_after is not None and 1 <= retry_after <= 10
        time.sleep(retry_after + 3.0)  # the Retry-After, plus a few poll intervals
        during = [
            t for t, _, _ in recorder.of("telemetry") if refused_at < t < refused_at + retry_after - SLACK_S
        ]
        assert during == [], f"{len(during)} telemetry request(s) within the Retry-After of {retry_after} s"
        after = [t for t, _, _ in recorder.of("telemetry") if t >= refused_at + retry_after - SLACK_S]
        assert after, "the agent did not send telemetry again once the Retry-After had passed"
        checkins = [t for t, _, _ in recorder.of("checkin") if refused_at < t < refused_at + retry_after]
        assert len(checkins) >= 2, "check-ins must go on while telemetry waits"
        # the spool kept the refused windows; with the limit lifted they all arrive
        app.state.limiter = RateLimiter(Limits(checkins_per_minute=10**6, windows_per_minute=10**6))
        wait_for(lambda: not Spool(state / "spool").pending(), timeout=60)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        log.close()
    spool = Spool(state / "spool")
    assert spool.pending() == [] and spool.dropped == 0 and spool.refused == 0
    accepted = sum(1 for _, s, _ in recorder.of("telemetry") if s == 201)
    with app.state.sessionmaker() as session:
        from sqlalchemy import func, select

        from liteship.fleet.models import TelemetryWindow

        stored = session.scalar(select(func.count()).select_from(TelemetryWindow))
    assert stored == accepted and stored > 6  # every window the agent closed reached the server once
