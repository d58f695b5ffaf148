"""Fleet server fixtures: signed packages, a throwaway PostgreSQL server, apps on SQLite and PostgreSQL,
and a real uvicorn server on loopback."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

ADMIN = "admin-token-for-tests-0123456789"
ENROLL = "enroll-token-for-tests-0123456789"
MODEL_FILE = (
    Path(__file__).resolve().parents[2] / "data" / "third_party" / "mobilenet_v1_0.25_224_quant.tflite"
)
# a reference confidence histogram as validation would record it (10 bins; the server resamples to 20)
REFERENCE = {"bins": [i / 10 for i in range(11)], "counts": [0, 0, 1, 2, 4, 8, 15, 20, 25, 25]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> Any:
    from liteship.package import generate_keypair

    d = tmp_path_factory.mktemp("keys")
    return {"good": generate_keypair(d / "pub.key"), "other": generate_keypair(d / "other.key")}


@pytest.fixture(scope="session")
def make_package(keys, tmp_path_factory):
    """``make_package(model_id, version, key="good", reference=True)`` -> path of a signed .lsp (cached).

    ``reference=False`` builds a package without the validation confidence histogram.
    """
    from liteship.package import build_package

    out = tmp_path_factory.mktemp("packages")
    cache: dict[tuple[str, str, str, bool], Path] = {}

    def make(
        model_id: str = "digits", version: str = "1.0.0", key: str = "good", reference: bool = True
    ) -> Path:
        k = (model_id, version, key, reference)
        if k not in cache:
            folder = key if reference else f"{key}-noref"
            info = build_package(
                MODEL_FILE,
                out / folder / f"{model_id}-{version}.lsp",
                model_id=model_id,
                version=version,
                private_key=keys[key].private_path,
                reference_histogram=REFERENCE if reference else None,
                golden_inputs=np.full((2, 224, 224, 3), 128, dtype=np.uint8),
                created="2025-01-01T00:00:00Z",
            )
            cache[k] = Path(info.path)
        return cache[k]

    return make


# ---- PostgreSQL -----------------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class ThrowawayPostgres:
    """A PostgreSQL server of its own (initdb + pg_ctl in a temp dir, loopback, free port) that can be
    stopped and started again (a database that goes away and comes back, data kept).

    As root the server runs as the ``postgres`` user (PostgreSQL refuses to run as root). Skips the
    test with a reason when PostgreSQL is missing or cannot start.
    """

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl; scripts/os-deps.sh installs it)")
        self.pg_ctl = pg_ctl
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
            runuser = shutil.which("runuser") or shutil.which("su")
            self.prefix = (
                ["runuser", "-u", "postgres", "--"] if runuser and runuser.endswith("runuser") else []
            )
            if not self.prefix:
                pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        self.root = Path(tempfile.mkdtemp(prefix="liteship-pg-"))
        self.data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            os.chown(self.root, user.pw_uid, user.pw_gid)
            os.chown(sock, user.pw_uid, user.pw_gid)
        self.port = free_port()
        self.opts = (
            f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        try:
            subprocess.run(
                [*self.prefix, initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                check=True,
                capture_output=True,
                timeout=120,
            )
            self.start()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            out = getattr(e, "stderr", b"") or b""
            shutil.rmtree(self.root, ignore_errors=True)
            pytest.skip(f"cannot start a PostgreSQL server: {e} {out.decode(errors='replace')[-300:]}")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), *args],
            check=check,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._ctl("-o", self.opts, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clients are disconnected; ``immediate``: as a crash)."""
        self._ctl("-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL for the session (:class:`ThrowawayPostgres`); yields a base URL."""
    server = ThrowawayPostgres()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the throwaway server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=_BACKENDS)
def db_url(request, tmp_path) -> str | None:
    """None (the default SQLite file) or a fresh PostgreSQL database: tests using it run on both."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return None


# ---- apps and servers -----------------------------------------------------------------------------


def production_settings(data_dir: Path, keys: Any, db_url: str | None = None, **overrides: Any) -> Any:
    """Production settings with the test tokens and the good signing key; decisions on every call."""
    from liteship.fleet.settings import Settings

    values = dict(
        environment="production",
        admin_token=ADMIN,
        enrollment_token=ENROLL,
        data_dir=data_dir,
        database_url=db_url,
        trusted_keys=[keys["good"].public_path],
        decision_interval_s=0.0,
        min_devices=2,
        min_predictions=200,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_settings(tmp_path, keys):
    counter = itertools.count()

    def make(db_url: str | None = None, **overrides: Any) -> Any:
        return production_settings(tmp_path / f"data{next(counter)}", keys, db_url, **overrides)

    return make


class Fleet:
    """A TestClient on an app, with helpers for the common calls."""

    def __init__(self, client: Any, app: Any) -> None:
        self.client, self.app = client, app
        self.admin = {"Authorization": f"Bearer {ADMIN}"}

    def publish(self, path: Path, **params: Any) -> Any:
        return self.client.post(
            "/api/v1/releases", content=path.read_bytes(), headers=self.admin, params=params
        )

    def register(self, device_id: str, model_id: str | None = "digits") -> dict[str, str]:
        r = self.client.post(
            "/api/v1/devices/register",
            json={"device_id": device_id, "enrollment_token": ENROLL, "model_id": model_id},
        )
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def checkin(self, device_id: str, headers: dict[str, str], version: str | None = None) -> Any:
        body = {
            "model_id": "digits",
            "model_version": version,
            "runtime": {"name": "litert"},
            "health": {"status": "ok"},
        }
        return self.client.post(f"/api/v1/devices/{device_id}/checkin", json=body, headers=headers)

    def rollout(self, version: str, **body: Any) -> Any:
        return self.client.post(
            "/api/v1/rollouts",
            json={"model_id": "digits", "candidate_version": version, **body},
            headers=self.admin,
        )


@pytest.fixture
def fleet(make_settings, db_url) -> Iterator[Fleet]:
    """The app on SQLite and (marked ``postgres``) on PostgreSQL, through FastAPI's TestClient."""
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    app = create_app(make_settings(db_url))
    with TestClient(app) as client:
        yield Fleet(client, app)
    app.state.engine.dispose()


@pytest.fixture
def sqlite_fleet(make_settings) -> Iterator[Fleet]:
    from fastapi.testclient import TestClient

    from liteship.fleet.app import create_app

    app = create_app(make_settings())
    with TestClient(app) as client:
        yield Fleet(client, app)
    app.state.engine.dispose()


class LiveServer:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(make_settings) -> Iterator[LiveServer]:
    """The real server (uvicorn) on a free loopback port, SQLite store."""
    from liteship.fleet.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(make_settings())
    with LiveServer(app) as server:
        yield server
    app.state.engine.dispose()
