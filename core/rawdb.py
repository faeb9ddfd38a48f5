"""A small pool of raw psycopg connections for the hot paths (the API's and the worker's).

Why not the SQLAlchemy session the other routes use: measured on the 2-core box, a
one-row read through the ORM costs ~2.4 ms of API CPU, the same read as one statement
on a raw connection ~0.2 ms; in the worker, a statement through an AsyncSession costs
0.63-0.75 ms of CPU against 0.10-0.13 ms here (`python -m bench.db_path`). The difference
is round trips as much as Python: the engine's `pool_pre_ping` sends `SELECT 1` on every
checkout (and psycopg wraps it in a `BEGIN`), the session ends with a `ROLLBACK`, so a
single SELECT costs four round trips, and on this VM every send over loopback is paid in
kernel CPU. Here connections are in autocommit mode, so a statement is its own
transaction: one statement, one round trip.

Instead of pinging, a connection is checked on checkout by polling its socket: an idle
connection has nothing to read, so a readable one was closed or sent an error (a
restarted Postgres does both) and is dropped without a round trip. A read that still
meets a dead connection (a restart between the check and the query) is retried once on
a new one; writes are never retried, so nothing is applied twice.

Why not psycopg_pool (tried for issue 20, 2026-12-08, interleaved A/B on this box): +8-16 us
of CPU per checkout in-process, retrieve 4,195 vs 5,206 req/s (mean of 10 runs each); and
it cannot fail a request at once when the database is unreachable (its waiters wait out
the 30 s timeout while it reconnects in the background) without overriding its internals.
"""

from __future__ import annotations

import asyncio
import json
import select
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import TransactionStatus
from pydantic_core import from_json
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


class PoolTimeout(psycopg.OperationalError):
    """No connection came free in time: the database is stuck or overloaded (the API
    answers 503 to it like to any unreachable database; an activity fails and is retried)."""

# Requests hold a connection for one or two statements, so a few serve many in flight.
POOL_SIZE = 10
# As long as SQLAlchemy's pool_timeout: waiting longer means the database is stuck.
ACQUIRE_TIMEOUT_SECONDS = 30.0


class _JsonLoader(Loader):
    """jsonb (and json) text to Python values, as json.loads gives them, 3-20x faster.

    pydantic's parser returns the same objects for what Postgres can hold (floats
    round-trip exactly, big integers stay ints); anything it refuses goes to json.loads.
    A 20-message page holds 80 jsonb values, so this is a fifth of its CPU.
    """

    def load(self, data: Buffer) -> Any:
        text = data if isinstance(data, bytes) else bytes(data)
        try:
            return from_json(text)
        except ValueError:
            return json.loads(text)


def _readable(conn: AsyncConnection[Any]) -> bool:
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


class RawPool:
    def __init__(self, engine: AsyncEngine, size: int = POOL_SIZE) -> None:
        # The engine's own connect arguments, with psycopg's default adapters (not
        # SQLAlchemy's map) but a faster jsonb parser that yields the same values.
        cargs, cparams = engine.dialect.create_connect_args(engine.sync_engine.url)
        adapters = AdaptersMap(psycopg.adapters)
        adapters.register_loader("jsonb", _JsonLoader)
        adapters.register_loader("json", _JsonLoader)
        cparams["context"] = adapters
        self._cargs: list[Any] = list(cargs)
        self._cparams: dict[str, Any] = dict(cparams)
        self._idle: list[AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)

    async def _connect(self) -> AsyncConnection[Any]:
        return await AsyncConnection.connect(*self._cargs, autocommit=True, **self._cparams)

    def _checkout(self) -> AsyncConnection[Any] | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and not _readable(conn):
                return conn
            conn.pgconn.finish()
        return None

    def _checkin(self, conn: AsyncConnection[Any]) -> None:
        """Keep a connection only if it is idle (not broken, not mid-query or -transaction)."""
        if not conn.closed and conn.pgconn.transaction_status == TransactionStatus.IDLE:
            self._idle.append(conn)
        else:
            conn.pgconn.finish()

    def drop_idle(self) -> None:
        for conn in self._idle:
            conn.pgconn.finish()
        self._idle.clear()

    async def open(self) -> None:
        """Nothing to start: connections are opened by the requests that need them."""

    async def close(self) -> None:
        self.drop_idle()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        async with self._connection() as (conn, _):
            yield conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[AsyncConnection[Any], bool]]:
        """(a connection, whether it came from the pool rather than a new connect)."""
        if self._slots.locked():  # only then can acquiring wait (a timer costs CPU too)
            try:
                async with asyncio.timeout(ACQUIRE_TIMEOUT_SECONDS):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeout(f"no database connection free after "
                                  f"{ACQUIRE_TIMEOUT_SECONDS:.0f} s") from None
        else:
            await self._slots.acquire()
        try:
            pooled = self._checkout()
            conn = pooled or await self._connect()
            try:
                yield conn, pooled is not None
            finally:
                self._checkin(conn)
        finally:
            self._slots.release()

    async def read(self, query: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """`query(conn)`, retried once on a new connection if a pooled one turns out dead.

        For reads only: a write that failed this way may or may not have been applied.
        """
        async with self._connection() as (conn, pooled):
            try:
                return await query(conn)
            except psycopg.OperationalError:
                if not pooled or not conn.closed:
                    raise  # a new connection failed, or the server answered with an error
                # The others in the pool were opened before the same outage: drop them.
                self.drop_idle()
        async with self._connection() as (conn, _):
            return await query(conn)
