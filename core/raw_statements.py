"""SQLAlchemy Core statements compiled once, run on raw psycopg connections (core/rawdb.py).

The worker's hot statements are built with SQLAlchemy Core from the ORM tables, so they
follow the schema; but running one through an AsyncSession costs 0.5-0.7 ms of CPU
(session, pool checkout, result machinery: `python -m bench.db_path`), several times
what psycopg itself needs. Here a statement is compiled to SQL text once, at import, and
each execution hands psycopg that text and a dict of parameters: the literals compiled
into the statement keep their values, parameters get SQLAlchemy's own conversions (JSON
as jsonb), and rows come back as psycopg reads them (jsonb parsed by the pool's loader,
integers as ints: what SQLAlchemy returns for these columns too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from psycopg import AsyncConnection
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from core.rawdb import RawPool

# Compiles only (never connects): the same SQL SQLAlchemy's psycopg dialect would send,
# with its `::TYPE` casts on parameters.
_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


class CompiledStatement:
    """`statement` as SQL text with `%(name)s` parameters, and how to fill them."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        if "POSTCOMPILE" in compiled.string:
            # An expanding IN list is rendered per execution: not something to compile once.
            raise ValueError("statements with expanding parameters (IN lists) can't be "
                             "compiled once; compare with OR instead")
        self.sql = compiled.string
        # SQLAlchemy's own conversions for its psycopg dialect (JSON to psycopg's Jsonb,
        # None as JSON null as its JSON type sends it; a JSON index to text), applied
        # once to the literals compiled into the statement, per execution to the rest.
        self._convert: dict[str, Callable[[Any], Any]] = {}
        self._literals: dict[str, Any] = {}
        for name, value in compiled.params.items():
            bind = compiled.binds[name]
            convert = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if convert is not None:
                self._convert[name] = convert
            if not bind.required:
                self._literals[name] = value if convert is None else convert(value)

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(self._literals)
        for name, value in given.items():
            convert = self._convert.get(name)
            values[name] = value if convert is None else convert(value)
        return values


class RawResult:
    """The rows of one execution (each statement here returns a handful at most)."""

    def __init__(self, names: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        self._names = names
        self._rows = rows

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def one(self) -> tuple[Any, ...]:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def first_mapping(self) -> dict[str, Any] | None:
        """The first row by column name (names must be unique: not for `joined` rows)."""
        row = self.first()
        return None if row is None else dict(zip(self._names, row, strict=True))

    def scalars(self) -> Iterator[Any]:
        return (row[0] for row in self._rows)


class RawDb:
    """One raw connection, in a transaction or in autocommit (one statement, one
    transaction, no BEGIN/COMMIT round trips)."""

    def __init__(self, conn: AsyncConnection[Any], transaction: bool) -> None:
        self.conn = conn
        self.transaction = transaction

    async def execute(self, statement: CompiledStatement,
                      parameters: Mapping[str, Any] | None = None) -> RawResult:
        cursor = await self.conn.execute(statement.sql,
                                         statement.parameters(parameters or {}))
        if cursor.description is None:  # no rows: an INSERT/UPDATE/DELETE without RETURNING
            return RawResult((), [])
        return RawResult([c.name for c in cursor.description], await cursor.fetchall())


@asynccontextmanager
async def connect(pool: RawPool, transaction: bool) -> AsyncIterator[RawDb]:
    """A connection, in a transaction only if several writes must commit together: a
    single statement is atomic on its own, and BEGIN and COMMIT cost a round trip each."""
    async with pool.connection() as conn:
        if not transaction:
            yield RawDb(conn, transaction=False)
            return
        async with conn.transaction():
            yield RawDb(conn, transaction=True)
