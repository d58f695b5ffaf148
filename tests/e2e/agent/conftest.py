"""The real fleet server on loopback (uvicorn in a child process) and agent processes against it."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve()
_spec = importlib.util.spec_from_file_location(
    "agent_test_helpers", HERE.parents[3] / "tests/unit/agent/helpers.py"
)
helpers = importlib.util.module_from_spec(_spec)
sys.modules["agent_test_helpers"] = helpers
_spec.loader.exec_module(helpers)

# keys, golden, packages, digit_pngs are the unit tests' fixtures
_unit = importlib.util.spec_from_file_location(
    "agent_unit_conftest", HERE.parents[3] / "tests/unit/agent/conftest.py"
)
_unit_mod = importlib.util.module_from_spec(_unit)
_unit.loader.exec_module(_unit_mod)
keys, golden, packages, digit_pngs = (
    _unit_mod.keys,
    _unit_mod.golden,
    _unit_mod.packages,
    _unit_mod.digit_pngs,
)

ADMIN, ENROLL = "admin-token-for-tests-0123456789", "enroll-token-for-tests-0123456789"
SERVER_CODE = """
import json, sys, uvicorn
from liteship.fleet.app import create_app
from liteship.fleet.settings import Settings
s = Settings.from_env(
    data_dir=sys.argv[1], admin_token={admin!r}, enrollment_token={enroll!r}, trusted_keys=[sys.argv[2]],
    **json.loads(sys.argv[4])
)
uvicorn.run(create_app(s), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """A running fleet server: start/stop it (same port and data), publish packages, read its tables."""

    # agents here poll every 0.3 s and close a window every 0.3 s (test speed, ~200 a minute): the
    # per-device rate limits (liteship.fleet.limits) are raised to match; a test can lower them
    TEST_LIMITS = {
        "LITESHIP_LIMIT_CHECKINS_PER_MINUTE": "100000",
        "LITESHIP_LIMIT_WINDOWS_PER_MINUTE": "100000",
    }

    def __init__(
        self, data_dir: Path, public_key: str, env: dict[str, str] | None = None, **settings: object
    ) -> None:
        """``env``: ``LITESHIP_*`` variables for the server; ``settings``: fields of
        :class:`liteship.fleet.settings.Settings` beyond the defaults."""
        self.data_dir, self.public_key, self.port = data_dir, public_key, free_port()
        self.env = {**self.TEST_LIMITS, **(env or {})}
        self.settings = settings
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        code = textwrap.dedent(SERVER_CODE.format(admin=ADMIN, enroll=ENROLL))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                str(self.data_dir),
                self.public_key,
                str(self.port),
                json.dumps(self.settings),
            ],
            env={**os.environ, **self.env},
        )
        # Waits on the server's state: it answers /healthz, or it exited. The deadline only guards a
        # hang (niced beside normal-priority work, the import alone can take over a minute).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fleet server exited with code {self.proc.returncode} before it answered")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("fleet server did not answer /healthz within 300 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def publish(self, package: Path, channel: str | None = None) -> dict:
        r = httpx.post(
            f"{self.url}/api/v1/releases",
            content=package.read_bytes(),
            params={"channel": channel} if channel else None,
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        return r.json()

    def devices(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/devices", headers={"Authorization": f"Bearer {ADMIN}"}).json()

    def windows(self, device_id: str) -> list[tuple]:
        import sqlite3

        with sqlite3.connect(self.data_dir / "fleet.db") as db:
            return db.execute(
                "SELECT window_id, inferences, rollbacks, model_version FROM telemetry_windows "
                "WHERE device_id = ?",
                (device_id,),
            ).fetchall()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, keys):
    f = Fleet(tmp_path_factory.mktemp("fleet"), keys.public_path)
    f.start()
    yield f
    f.stop()


@pytest.fixture
def enrolled(fleet, keys, tmp_path, cli):
    """``enrolled(device_id, model_id)`` → state folder of a device enrolled through the real CLI."""

    def enroll(device_id: str, model_id: str) -> Path:
        state = tmp_path / device_id
        r = cli(
            "agent",
            "enroll",
            "--state-dir",
            str(state),
            "--server",
            fleet.url,
            "--enrollment-token",
            ENROLL,
            "--device-id",
            device_id,
            "--model-id",
            model_id,
            "--key",
            keys.public_path,
            "--json",
        )
        assert r.returncode == 0, r.stderr
        return state

    return enroll


def agent_cmd(state: Path, frames: Path, *extra: str) -> list[str]:
    exe = Path(sys.executable).parent / "liteship"
    return [
        str(exe),
        "agent",
        "run",
        "--state-dir",
        str(state),
        "--source",
        f"images:{frames}",
        "--loop",
        "--threads",
        "1",
        "--poll-interval",
        "0.3",
        *extra,
    ]


def start_agent(
    state: Path, frames: Path, *extra: str, sink: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    args = agent_cmd(state, frames, *extra, "--sink", f"file:{sink}" if sink else "stdout")
    return subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=open(state / "agent.log", "ab"),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


sys.modules["agent_e2e_conftest"] = sys.modules[__name__]  # so tests can import start_agent / wait_for
