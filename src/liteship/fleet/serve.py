"""Run the fleet server: prepare settings and tokens, migrate, bind, then report and serve.

    >>> def ready(info: ServerInfo) -> None: print(info.url)      # doctest: +SKIP
    >>> serve(Settings(data_dir="fleet"), host="127.0.0.1", port=8700, on_ready=ready)  # doctest: +SKIP

The socket is bound here, before uvicorn starts, so a port in use is one clear error instead of
uvicorn's log line and exit code, and ``on_ready`` (the CLI's banner) runs only once the bind worked.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liteship.errors import FleetError, UsageError
from liteship.fleet.secrets import Source, check_exposure, ensure_secrets, is_loopback, secrets_path
from liteship.fleet.settings import Settings, redact_url


@dataclass(frozen=True)
class ServerInfo:
    """What a person needs to use a server that just started (the CLI prints it as a banner)."""

    url: str
    host: str
    port: int
    workers: int
    data_dir: Path
    database: str  # the URL without a password
    tuf_root: Path
    secrets_file: Path
    tokens: dict[str, str]  # field -> value
    token_sources: dict[str, Source]
    weak_tokens: dict[str, str] = field(default_factory=dict)  # field -> problem (loopback only)
    trusted_keys: list[str] = field(default_factory=list)

    @property
    def dashboard_url(self) -> str:
        return f"{self.url}/dashboard"


def public_url(host: str, port: int) -> str:
    """The URL clients use: a wildcard address is shown as this machine's host name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket as uvicorn would (SO_REUSEADDR).

    Raises:
        FleetError: the port is in use, or the address cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(
            f"cannot listen on `host` {host!r}: {e.strerror}.", hint="Use an address of this machine."
        ) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise FleetError(f"port {port} is in use; pick another with `port`.") from None
        if e.errno == errno.EACCES:
            raise FleetError(
                f"no permission to listen on port {port} (ports below 1024 need privileges); "
                "pick another with `port`."
            ) from None
        raise FleetError(f"cannot listen on {host}:{port}: {e.strerror or e}.") from None
    return sock


def prepare(settings: Settings, *, host: str, port: int, workers: int = 1) -> tuple[Settings, ServerInfo]:
    """Check the configuration for this host and fill in the tokens.

    Raises:
        UsageError: weak tokens on a non-loopback ``host``; several ``workers`` on SQLite; ``data_dir``
        is a file.
    """
    if workers > 1 and settings.is_sqlite:
        raise UsageError(
            "several `workers` need PostgreSQL; SQLite serializes writers.",
            hint="Pass a PostgreSQL `database_url` (postgresql://user@host/db), or use one worker.",
        )
    check_exposure(settings, host=host)
    settings, sources = ensure_secrets(settings)
    data_dir = Path(settings.data_dir).resolve()
    info = ServerInfo(
        url=public_url(host, port),
        host=host,
        port=port,
        workers=workers,
        data_dir=data_dir,
        database=redact_url(settings.resolved_database_url()),
        tuf_root=data_dir / "tuf" / "metadata" / "1.root.json",
        secrets_file=secrets_path(settings).resolve(),
        tokens={
            "admin_token": settings.admin_token or "",
            "enrollment_token": settings.enrollment_token or "",
        },
        token_sources=sources,
        weak_tokens=settings.weak_secrets() if is_loopback(host) else {},
        trusted_keys=list(settings.trusted_keys),
    )
    return settings, info


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    workers: int = 1,
    on_ready: Callable[[ServerInfo], None] | None = None,
) -> None:
    """Start the server and block until it stops (SIGINT/SIGTERM).

    Args:
        settings: the configuration; unset tokens are generated (see :mod:`liteship.fleet.secrets`).
        host: address to listen on. Weak tokens are refused unless it is loopback.
        port: TCP port, 1..65535.
        workers: API worker processes; more than one needs PostgreSQL.
        on_ready: called once the database is migrated and the socket is bound.

    Raises:
        UsageError: see :func:`prepare`. FleetError: the port is in use or the server failed to start.
    """
    from liteship.fleet.app import create_app

    if not 1 <= port <= 65535:
        raise UsageError(f"`port` must be within 1..65535, got {port}.")
    settings, info = prepare(settings, host=host, port=port, workers=workers)
    sock = bind(host, port)  # first: a port in use fails before any migration runs
    options: dict[str, Any] = {"log_level": "warning", "access_log": False}
    try:
        app = create_app(settings)  # migrate and initialize once, before any worker starts
        app.add_middleware(WorkerHeader)
        if workers == 1:
            server = _Server(uvicorn.Config(app, **options), on_started=lambda: on_ready and on_ready(info))
            server.run(sockets=[sock])
            if not server.started:
                raise FleetError(f"the server on {host}:{port} did not start; see the log above.")
            return
        from uvicorn.supervisors import Multiprocess

        app.state.engine.dispose()
        os.environ.update(worker_environment(settings, info))
        config = uvicorn.Config("liteship.fleet.serve:worker_app", factory=True, workers=workers, **options)
        if on_ready is not None:
            on_ready(info)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()


def worker_environment(settings: Settings, info: ServerInfo) -> dict[str, str]:
    """``LITESHIP_*`` variables that give each worker process the same settings as this one.

    Configured tokens are passed; generated ones are read by the workers from ``secrets.json``.
    """
    env = {"LITESHIP_DATABASE_URL": settings.resolved_database_url(), "LITESHIP_DATA_DIR": str(info.data_dir)}
    for name in sorted(settings.model_fields_set - {"database_url", "data_dir"}):
        value = getattr(settings, name)
        if value is None or (name in info.token_sources and info.token_sources[name] != "configured"):
            continue
        env[f"LITESHIP_{name.upper()}"] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return env


class WorkerHeader:
    """Adds ``X-Liteship-Worker: <pid>`` to every answer: which API worker served it (load balancing
    across workers is visible from outside; the multi-worker tests rely on it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (b"x-liteship-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, tagged)


def worker_app() -> FastAPI:
    """Uvicorn factory of one worker process (``serve --workers N``): the app from ``LITESHIP_*``."""
    from liteship.fleet.app import app_from_env

    app = app_from_env()
    app.add_middleware(WorkerHeader)
    return app


class _Server(uvicorn.Server):
    """A uvicorn server that calls back once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], Any]) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.on_started()
