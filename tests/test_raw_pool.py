"""The raw pool (core/rawdb.py) through an outage: psycopg_pool with our three choices.

- An unreachable database fails a request at once, not after the 30 s acquire timeout
  (psycopg_pool alone lets a waiter wait while it reconnects in the background), and the
  pool finds the database again as soon as it is back.
- Connections that a Postgres restart closed are all replaced on the first checkout that
  meets one (psycopg_pool alone would back off 1 s, 2 s, 4 s... between dead ones).
- A dead connection that the checkout missed (a restart between the check and the query)
  costs a read one retry on a new connection; a write is never retried.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import core.rawdb
from core.rawdb import PoolTimeout, RawPool
from core.settings import Settings


async def _select_one(conn: AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT 1")).fetchone()
    assert row is not None
    return int(row[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _forward_to(port: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    """One client connection relayed to 127.0.0.1:`port` (Postgres "coming back")."""
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer),
                         return_exceptions=True)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


async def test_an_unreachable_database_fails_at_once_and_is_found_again(
        settings: Settings) -> None:
    url = make_url(settings.database_url)
    port = _free_port()  # nothing listens there: connection refused
    engine = create_async_engine(url.set(port=port))
    pool = RawPool(engine)
    await pool.open()
    try:
        async with asyncio.timeout(10):  # the acquire timeout is 30 s
            # The first request, one while the pool retries, then several at once.
            for _ in range(2):
                with pytest.raises(psycopg.OperationalError) as raised:
                    await pool.read(_select_one)
                assert not isinstance(raised.value, PoolTimeout)
            failures = await asyncio.gather(*(pool.read(_select_one) for _ in range(3)),
                                            return_exceptions=True)
            assert all(isinstance(f, psycopg.OperationalError)
                       and not isinstance(f, PoolTimeout) for f in failures), failures
        server = await asyncio.start_server(
            lambda r, w: _forward_to(url.port or 5432, r, w), "127.0.0.1", port)
        async with server:
            async with asyncio.timeout(5):
                assert await pool.read(_select_one) == 1
            await pool.close()
    finally:
        await pool.close()
        await engine.dispose()


async def _terminate(settings: Settings, pids: list[int]) -> None:
    admin = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid",
                           (pids,))
    await asyncio.sleep(0.3)  # the closes reach the pool's sockets


async def _pid(conn: AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    assert row is not None
    return int(row[0])


async def test_connections_closed_by_a_restart_are_all_replaced_at_once(
        settings: Settings, engine: AsyncEngine) -> None:
    pool = RawPool(engine)
    await pool.open()

    async def held_pid() -> int:  # four at once: four connections in the pool
        async with pool.connection() as conn:
            pid = await _pid(conn)
            await asyncio.sleep(0.2)
        return pid

    try:
        pids = set(await asyncio.gather(*(held_pid() for _ in range(4))))
        assert len(pids) == 4
        await _terminate(settings, list(pids))
        started = time.monotonic()
        async with pool.connection() as conn:
            assert await _pid(conn) not in pids
        assert time.monotonic() - started < 3, time.monotonic() - started
    finally:
        await pool.close()


async def test_a_dead_connection_missed_on_checkout_costs_a_read_one_retry(
        settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.rawdb, "_readable", lambda conn: False)
    pool = RawPool(engine, size=1)  # one connection: the dead one is the one handed out
    await pool.open()
    try:
        async with pool.connection() as conn:
            dead = await _pid(conn)
        await _terminate(settings, [dead])
        assert await pool.read(_pid) != dead
        async with pool.connection() as conn:
            dead = await _pid(conn)
        await _terminate(settings, [dead])
        with pytest.raises(psycopg.OperationalError):
            async with pool.connection() as conn:  # a write's path: no retry
                await conn.execute("SELECT 1")
        assert await pool.read(_select_one) == 1
    finally:
        await pool.close()

