"""What one Postgres statement costs the worker, by the path it takes.

    python -m bench.db_path [--statements 2000]

Only embedded Postgres is started. The same `SELECT 1` goes through: a bare psycopg
`AsyncConnection` in autocommit (the floor), the worker's path (`core.raw_statements`:
a compiled Core statement on a connection of the raw pool, alone or in a transaction), the
path it replaced (an `AsyncSession` connection in autocommit or in a transaction) and
`engine.connect()`. CPU and wall time per statement, on uvloop like the worker. A text
turn makes 3 statements, a function round trip 8.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import uvloop
from sqlalchemy import text

from bench.report import Report, log
from core.db import create_engine, create_sessionmaker
from core.raw_statements import CompiledStatement, connect
from core.rawdb import RawPool
from launcher.embedded import EmbeddedStack


async def measure(database_url: str, statements: int) -> Report:
    report = Report("db_path")
    engine = create_engine(database_url, pre_ping=False)  # as the worker's
    sessions = create_sessionmaker(engine)
    raw = await psycopg.AsyncConnection.connect(database_url.replace("+psycopg", ""),
                                                autocommit=True)
    one = text("SELECT 1")
    pool, compiled = RawPool(engine), CompiledStatement(one)
    await pool.open()

    async def bare() -> None:
        await (await raw.execute("SELECT 1")).fetchone()

    async def worker_path() -> None:
        async with connect(pool, transaction=False) as db:
            (await db.execute(compiled)).first()

    async def worker_path_transaction() -> None:
        async with connect(pool, transaction=True) as db:
            (await db.execute(compiled)).first()

    async def session_path() -> None:
        async with sessions() as session:
            conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            (await conn.execute(one)).first()

    async def session_path_transaction() -> None:
        async with sessions() as session, session.begin():
            (await session.execute(one)).first()

    async def engine_connect() -> None:
        async with engine.connect() as conn:
            (await conn.execute(one)).first()

    paths: dict[str, Callable[[], Awaitable[None]]] = {
        "bare psycopg, autocommit": bare,
        "worker: raw pool, autocommit": worker_path,
        "worker: raw pool, transaction": worker_path_transaction,
        "AsyncSession, autocommit (before)": session_path,
        "AsyncSession, transaction (before)": session_path_transaction,
        "engine.connect()": engine_connect,
    }
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    wall: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(3):  # interleaved rounds: the VM's speed drifts
        for name, statement in paths.items():
            for _ in range(100):
                await statement()
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            for _ in range(statements):
                await statement()
            cpu[name].append((time.process_time() - cpu_start) / statements * 1e6)
            wall[name].append((time.perf_counter() - wall_start) / statements * 1e6)
    await raw.close()
    await pool.close()
    await engine.dispose()
    floor = min(cpu["bare psycopg, autocommit"])
    for name in paths:
        report.add(f"{name}: client CPU per statement", min(cpu[name]), "us", "",
                   f"best of 3; {min(cpu[name]) / floor:.1f}x the bare connection")
        report.add(f"{name}: wall per statement", min(wall[name]), "us")
    report.details = {"cpu_us": cpu, "wall_us": wall, "statements": statements}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=2000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="assistants-bench-db-"))
    stack = EmbeddedStack(data_dir, ephemeral=True)
    try:
        log("starting embedded Postgres ...")
        env = stack.start_postgres()()  # start, then wait until it accepts connections
        report = uvloop.run(measure(env["DATABASE_URL"], args.statements))
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report.finish()


if __name__ == "__main__":
    main()
