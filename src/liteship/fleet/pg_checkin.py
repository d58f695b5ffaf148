"""PostgreSQL check-ins on the event loop: a small pool of psycopg ``AsyncConnection`` s (issue 24.6).

On PostgreSQL a check-in used to run in the thread pool (a network round trip must not block the event
loop), and that hand-off — two threads taking turns with the GIL, the thread pool's queue, SQLAlchemy's
connection checkout and transaction — was most of its server CPU. The common check-in now runs on the
event loop: one ``UPDATE … RETURNING`` in autocommit mode on a connection of this pool (one round trip;
psycopg prepares the statement on the server after a few uses), with no thread involved.

The statement is the check-in's own (``fleet.checkin._update_device``) with two more conditions, so it
writes either everything the check-in would write or nothing:

- ``devices.model_id = <the model the device claims>``: the device is enrolled for that model, so no
  report is refused (``refused_reports`` unchanged) and the claim changes nothing but what it reports;
- ``models.plan_version = <the version of the plan this worker caches>``: the cached plan is the one the
  check-in's own transaction would read, exactly as on the existing path.

Every other case — no row updated (unknown device, another model, a plan changed since it was cached, no
cached plan yet), revert or download events to store, no model claimed, any database error, no
connection to be had — goes to the existing path (``CheckIns.check_in`` in the thread pool), which
answers as before: the same assignment, the same 404/422, the same 503 when the database is gone. A
connection that failed is closed and replaced (the existing path then retries on the engine's pool,
which pings its connections): a restarted server costs one fallback per pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

log = logging.getLogger(__name__)

RETRY_CONNECT_S = 1.0  # after a failed connect, check-ins take the existing path for this long
CONNECT_TIMEOUT_S = 10


class AsyncPool:
    """At most ``size`` psycopg ``AsyncConnection`` s (autocommit) of one event loop, opened on demand.

    :meth:`acquire` gives an idle connection, opens one while fewer than ``size`` are open, or waits for
    one to be released; it returns None when none can be had now (the database refused the last connect
    less than ``RETRY_CONNECT_S`` ago, or a connection was dropped while waiting): the caller then takes
    the existing path. The pool belongs to the loop that first used it; a use from another loop (a test
    client runs a loop per request) closes the old connections and starts over.
    """

    def __init__(self, engine: Any, size: int) -> None:
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        cparams = dict(cparams)  # the engine's own: host, port, user, dbname, adapters context…
        cparams.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        cparams["autocommit"] = True
        from psycopg.pq import TransactionStatus  # imported here: a SQLite server never loads psycopg

        self._idle_status = TransactionStatus.IDLE
        self._cargs, self._cparams = tuple(cargs), cparams
        self.size = size
        self._idle: list[Any] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0
        self._closing = False
        self.opened = 0  # connections opened since the start (tests and logs)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        for conn in self._idle:  # made on another loop: not usable here
            _finish(conn)
        self._idle.clear()
        self._open = 0
        self._waiters.clear()
        self._loop = loop
        self._closing = False

    async def acquire(self) -> Any | None:
        loop = asyncio.get_running_loop()
        self._bind(loop)
        if self._idle:
            return self._idle.pop()
        if self._open < self.size:
            if time.monotonic() < self._down_until:
                return None
            return await self._connect()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self.release(waiter.result())  # handed over just as this task was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def _connect(self) -> Any | None:
        import psycopg

        self._open += 1
        try:
            conn = await psycopg.AsyncConnection.connect(*self._cargs, **self._cparams)
        except Exception as e:  # noqa: BLE001 — refused, timed out…: the existing path answers (503)
            self._open -= 1
            self._down_until = time.monotonic() + RETRY_CONNECT_S
            log.warning("check-in connection to the database failed: %s", str(e).strip()[:200])
            return None
        except BaseException:
            self._open -= 1
            raise
        self.opened += 1
        return conn

    def release(self, conn: Any) -> None:
        """Give a connection back: to a waiting task, else to the idle list (a bad one is closed)."""
        if self._closing or conn.closed or conn.info.transaction_status != self._idle_status:
            self.discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def discard(self, conn: Any) -> None:
        """Close a connection that failed (or is in an unknown state); a waiting task gets None."""
        _finish(conn)
        self._open = max(0, self._open - 1)
        while self._waiters:  # it takes the existing path (or opens a connection next time)
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections (at the application's shutdown; the busy ones when released)."""
        self._closing = True
        for conn in self._idle:
            await conn.close()
        self._open -= len(self._idle)
        self._idle.clear()

    async def warm(self) -> None:
        """Open one connection now (at the application's startup), so the first check-in need not."""
        conn = await self.acquire()
        if conn is not None:
            self.release(conn)


def _finish(conn: Any) -> None:
    try:
        conn.pgconn.finish()  # AsyncConnection.close() does no more than this, and needs no loop
    except Exception:  # noqa: BLE001 — already gone
        log.debug("closing a check-in connection failed", exc_info=True)
