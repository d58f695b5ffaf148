"""``create_app(settings)``: the fleet server as a FastAPI application.

    >>> from liteship.fleet.app import create_app
    >>> from liteship.fleet.settings import Settings
    >>> app = create_app(Settings(data_dir="/tmp/fleet"))         # doctest: +SKIP

The database is migrated to the latest schema (Alembic, configured in code) and the TUF repository is
initialized before the application is returned, so every API worker starts on a ready store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liteship.errors import Conflict, LiteshipError, NotFound, PackageError, StoreUnavailable
from liteship.fleet import dashboard, dashboard_jobs, gallery
from liteship.fleet.api.routes import (
    cohorts,
    devices,
    distribution,
    jobs,
    releases,
    rollouts,
    samples,
    telemetry,
)
from liteship.fleet.checkin import CheckIns
from liteship.fleet.jobs import OpenTasks
from liteship.fleet.limits import Limits, RateLimiter
from liteship.fleet.retention import Pruner
from liteship.fleet.samples import CaptureOffers
from liteship.fleet.secrets import ensure_secrets, prepare_data_dir
from liteship.fleet.settings import Settings
from liteship.fleet.storage import open_store
from liteship.fleet.tuf_repo import Expiry, TufRepository

log = logging.getLogger("liteship.fleet")
MIGRATIONS = Path(__file__).with_name("migrations")


def run_migrations(url: str) -> None:
    """Upgrade the database at ``url`` to the latest revision (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def make_engine(url: str, *, inline: bool = False) -> Any:
    """The engine of ``url``. ``inline`` (SQLite): the event loop's own engine for check-ins, which never
    waits: no busy timeout (a locked database fails at once and the check-in goes to the writer
    thread) and no automatic checkpoint (its fsyncs run on the writer thread: see ``fleet.checkin``)."""
    if url.startswith("sqlite"):
        timeout = 0 if inline else 30
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
            cur.execute("PRAGMA foreign_keys=ON")
            if inline:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_file(url: str) -> bool:
    """Whether ``url`` is a SQLite database in a file (a second engine opens the same database)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


class BodyLimit:
    """Refuse request bodies over a limit with 413, before the application reads them.

    The publish endpoint enforces its own (larger) limit while streaming the package to disk.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: Callable[[Scope], bool]) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        if declared is not None:
            await self.app(scope, receive, send)  # the server stops reading at Content-Length
            return
        # no Content-Length (chunked): read the body here, bounded, then replay it to the app
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _too_large(send, self.limit)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body is over the {limit}-byte limit."}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error_status(e: LiteshipError) -> int:
    if isinstance(e, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(e, Conflict):
        return status.HTTP_409_CONFLICT
    if isinstance(e, PackageError):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(e, StoreUnavailable):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    return status.HTTP_400_BAD_REQUEST


DB_RETRY_AFTER_S = 5


def database_unavailable(e: Exception) -> JSONResponse | None:
    """503 for a database that cannot be reached or is busy (server down, connection cut, locked).

    Returns None for other database errors (a bug: those stay 500 so they are seen). The message names
    no URL or password: only the driver's first line, cut to 200 characters.
    """
    connection_lost = isinstance(e, DBAPIError) and e.connection_invalidated
    orig = getattr(e, "orig", None)
    kind = type(orig).__name__ if orig is not None else type(e).__name__
    if not (isinstance(e, PoolTimeout) or connection_lost or kind in _UNAVAILABLE):
        return None
    first = (str(orig if orig is not None else e).strip().splitlines() or [kind])[0][:200]
    log.warning("database unavailable: %s: %s", kind, first)
    return JSONResponse(
        {
            "detail": f"the fleet database is unavailable ({kind}: {first}); nothing was stored. "
            f"Retry in {DB_RETRY_AFTER_S} s; if it persists, check that the database server is running "
            "and reachable from the API."
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(DB_RETRY_AFTER_S)},
    )


def value_refused(e: DataError) -> JSONResponse:
    """422 for a value the database cannot hold (PostgreSQL: NUL in text, a string longer than its
    column, a number beyond its column's range). The transaction is rolled back: nothing is stored."""
    first = (str(e.orig).strip().splitlines() or ["invalid value"])[0][:200]
    if "NUL" in first or "0x00" in first:
        what = "a text value contains a NUL character (\\u0000), which the database cannot store"
    else:
        what = f"the database refused a value ({first})"
    return JSONResponse(
        {
            "detail": f"{what}; nothing was stored. Send text without NUL characters, strings within their "
            "documented lengths and numbers within their bounds (see /api/docs)."
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


# driver exceptions that mean "not reachable now", not "this request is wrong": psycopg's and sqlite3's
# OperationalError (connection refused or cut, server shutting down, database locked, disk I/O) and
# psycopg's InterfaceError (the connection is closed)
_UNAVAILABLE = {"OperationalError", "InterfaceError", "ConnectionFailure", "AdminShutdown"}


def _generic_http_detail(request: Request, e: StarletteHTTPException) -> str | None:
    """A clear message for Starlette's own one-word 404 and 405 (no route, wrong method)."""
    path = request.url.path[:200]
    if e.status_code == 404 and e.detail == "Not Found":
        return (
            f"no such path: {request.method} {path}. The paths are listed at /api/docs "
            "(schema: /api/openapi.json); check the ids in the path (an empty one leaves '//')."
        )
    if e.status_code == 405 and e.detail == "Method Not Allowed":
        allowed = (e.headers or {}).get("Allow", "another method")
        return f"{request.method} is not allowed on {path}; use {allowed}."
    return None


def add_api_docs(app: FastAPI) -> None:
    """``/api/docs``: Swagger UI from the ``swagger-ui-bundle`` package's files (works offline).

    Without that package (it is in the ``server`` extra) the page says so and links the OpenAPI schema.
    """
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    if swagger_ui_path is not None:
        from starlette.staticfiles import StaticFiles

        app.mount("/api/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(
                "<!doctype html><title>API docs</title><p>The interactive API docs need the "
                "<code>swagger-ui-bundle</code> package (<code>pip install 'liteship[server]'</code>); "
                'the schema is at <a href="/api/openapi.json">/api/openapi.json</a>.</p>'
            )
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="liteship fleet server — API",
            swagger_js_url="/api/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/api/docs/static/swagger-ui.css",
            swagger_favicon_url="/api/docs/static/favicon-32x32.png",
        )


def create_app(settings: Settings, *, verify_package: Callable[[Path, Any], Any] | None = None) -> FastAPI:
    """Build the server: migrate the database, prepare the artifact store and TUF repository.

    Tokens that are not configured are read from (or generated into) ``<data_dir>/secrets.json``.

    Args:
        settings: the configuration (see :class:`~liteship.fleet.settings.Settings`).
        verify_package: replaces ``liteship.package.verify_package`` (tests). Defaults to it.

    Returns:
        The FastAPI application (serve it with uvicorn).

    Raises:
        UsageError: ``data_dir`` is a file, the stored tokens cannot be read, or the S3 artifact
        store refuses the credentials or has no such bucket.
    """
    data_dir = prepare_data_dir(settings)
    settings, _ = ensure_secrets(settings)
    store = open_store(settings, data_dir)  # S3: checked now (credentials, bucket), before any migration
    url = settings.resolved_database_url()
    run_migrations(url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = app.state.checkins.pool  # PostgreSQL's check-in connections (liteship.fleet.pg_checkin)
        if pool is not None:
            await pool.warm()
        try:
            yield
        finally:
            if pool is not None:
                await pool.close()

    app = FastAPI(
        lifespan=lifespan,
        title="liteship fleet server",
        version="1",
        docs_url=None,  # served by add_api_docs from local files, never from a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    add_api_docs(app)
    app.state.settings = settings
    app.state.engine = make_engine(url)
    app.state.sessionmaker = sessionmaker(app.state.engine, expire_on_commit=False)
    inline = make_engine(url, inline=True) if _sqlite_file(url) else None
    app.state.checkins = CheckIns(
        app.state.engine, inline=inline, pg_connections=settings.pg_checkin_connections
    )
    app.state.open_bench_tasks = OpenTasks()
    app.state.limiter = RateLimiter(
        Limits(
            checkins_per_minute=settings.limit_checkins_per_minute,
            windows_per_minute=settings.limit_windows_per_minute,
            events_per_hour=settings.limit_events_per_hour,
            bytes_per_day=settings.limit_bytes_per_day,
        )
    )
    app.state.capture_offers = CaptureOffers()
    app.state.store = store
    app.state.pruner = Pruner(
        settings.retention_days, store=store, sample_retention_days=settings.sample_retention_days
    )
    with app.state.sessionmaker() as session:  # retention: once at start, then hourly on telemetry
        pruned = app.state.pruner.run_if_due(session)
    if pruned is not None and (pruned.windows or pruned.reverts or pruned.samples):
        log.info(
            "retention: deleted %d windows, %d revert rows and %d field samples",
            pruned.windows,
            pruned.reverts,
            pruned.samples,
        )
    expiry = Expiry(
        timestamp=timedelta(days=settings.tuf_timestamp_days),
        snapshot=timedelta(days=settings.tuf_snapshot_days),
        targets=timedelta(days=settings.tuf_targets_days),
        root=timedelta(days=settings.tuf_root_days),
    )
    app.state.tuf = TufRepository(data_dir / "tuf", expiry)
    app.state.tuf.initialize()
    app.state.verify_package = verify_package

    @app.exception_handler(LiteshipError)
    async def _liteship_error(request: Request, e: LiteshipError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=_error_status(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> Response:
        detail = _generic_http_detail(request, e)
        if detail is not None:
            e = StarletteHTTPException(e.status_code, detail, headers=e.headers)
        return await http_exception_handler(request, e)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database_error(request: Request, e: Exception) -> Response:
        if isinstance(e, DataError):
            return value_refused(e)
        answer = database_unavailable(e)
        if answer is None:
            raise e
        return answer

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = []
        for err in e.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{where}: {err.get('msg')}")
        return JSONResponse(
            {"detail": "invalid request: " + "; ".join(problems[:10]), "errors": problems},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    routers = (
        releases,
        devices,
        cohorts,
        telemetry,
        rollouts,
        jobs,
        samples,
        distribution,
        gallery,
        dashboard,
    )
    for module in routers:  # jobs and samples before distribution: their TUF target routes are more specific
        app.include_router(module.router)
    app.include_router(devices.reverts_router)
    app.include_router(dashboard_jobs.router)  # device-job pages (liteship.fleet.dashboard_jobs)
    devices.add_fast_check_in(app)  # the check-in without FastAPI's per-request machinery (issue 24.6)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        exempt=lambda scope: (
            (scope["path"] in ("/api/v1/releases", jobs.UPLOAD_PATH) and scope["method"] == "POST")
            or samples.is_upload(scope)  # bounded by its own limit while it streams
        ),
    )
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory for several workers: ``uvicorn --factory liteship.fleet.app:app_from_env``."""
    return create_app(Settings.from_env())
