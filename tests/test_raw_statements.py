"""Core statements compiled once and run on the raw pool (core/raw_statements.py).

The worker's hot statements take this path: what they store and return must be what the
same statement stores and returns through SQLAlchemy, and a pool that has no connection
to give must fail like an unreachable database (the API answers 503, an activity retries).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import core.rawdb
from core import ids
from core.raw_statements import CompiledStatement, connect
from core.rawdb import PoolTimeout, RawPool
from core.settings import Settings

_METADATA = MetaData()


def _table(name: str) -> Table:
    return Table(name, _METADATA, Column("id", String, primary_key=True),
                 Column("n", Integer), Column("doc", JSONB), Column("tags", JSONB))


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


async def test_same_rows_as_through_sqlalchemy(engine: AsyncEngine) -> None:
    table = _table(f"raw_{ids.new_id('t').lower()}")
    async with engine.begin() as conn:
        await conn.run_sync(table.create)
    try:
        # A literal JSON value compiled into the statement, a JSON parameter, and None.
        write = insert(table).values(id=bindparam("p_id"), n=bindparam("p_n"),
                                     doc=bindparam("p_doc", type_=JSONB), tags=["a", 1])
        read = select(table).where(table.c.id == bindparam("p_id"))
        pool = RawPool(engine)
        await pool.open()
        rows = {"raw-1": {"x": [1, 2.5, None]}, "raw-null": None}
        async with connect(pool, transaction=True) as db:
            for key, doc in rows.items():
                assert (await db.execute(CompiledStatement(write),
                                         {"p_id": key, "p_n": 7, "p_doc": doc})).first() is None
        async with engine.connect() as conn:
            for key, doc in rows.items():
                await conn.execute(write, {"p_id": f"sa-{key}", "p_n": 7, "p_doc": doc})
            await conn.commit()
            for key in rows:
                through_sqlalchemy = (await conn.execute(read, {"p_id": f"sa-{key}"})
                                      ).mappings().one()
                async with connect(pool, transaction=False) as db:
                    raw = (await db.execute(CompiledStatement(read), {"p_id": key})
                           ).first_mapping()
                assert raw == {**through_sqlalchemy, "id": key}
                # None goes in as JSON null, as SQLAlchemy's JSON type sends it.
                assert raw["doc"] == rows[key] and raw["tags"] == ["a", 1]
            stored = (await conn.execute(select(table.c.id, func.jsonb_typeof(table.c.doc))
                                         .order_by(table.c.id))).all()
            assert [tuple(row) for row in stored] == [
                ("raw-1", "object"), ("raw-null", "null"),
                ("sa-raw-1", "object"), ("sa-raw-null", "null")]
        await pool.close()
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(table.drop)


def test_expanding_lists_are_refused() -> None:
    table = _table("never_created")
    with pytest.raises(ValueError, match="IN lists"):
        CompiledStatement(select(table).where(table.c.id.in_(["a", "b"])))


async def test_no_free_connection_is_a_database_error(engine: AsyncEngine,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.rawdb, "ACQUIRE_TIMEOUT_SECONDS", 0.2)
    pool = RawPool(engine, size=1)
    await pool.open()
    async with pool.connection():
        with pytest.raises(PoolTimeout) as raised:
            async with pool.connection():
                pass
    assert isinstance(raised.value, psycopg.OperationalError)
    await pool.close()
