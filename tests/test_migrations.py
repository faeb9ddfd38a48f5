"""The migrations build exactly the schema core/tables.py declares.

Alembic compares the migrated database (the suite's, upgraded to head by conftest) with
the tables' metadata: a column, index or constraint added to one and not the other fails
here, before a deploy's `assistants migrate` meets it."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, MetaData, Text, create_engine
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import core.tables  # noqa: F401  (registers every table on SQLModel.metadata)


def _same_type(_context: Any, _inspected_column: Any, _metadata_column: Any,
               inspected_type: Any, metadata_type: Any) -> bool | None:
    # SQLModel declares `str` columns as AutoString (VARCHAR without a length); the
    # migrations create TEXT. Postgres stores both the same way. None: Alembic decides.
    if isinstance(metadata_type, AutoString) and isinstance(inspected_type, Text):
        return False
    return None


def _drift(database_url: str, metadata: MetaData) -> list[Any]:
    engine = create_engine(database_url.replace("postgres://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": _same_type, "compare_server_default": False})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_match_the_tables(stack_env: dict[str, str]) -> None:
    assert _drift(stack_env["DATABASE_URL"], SQLModel.metadata) == []


def test_a_column_missing_from_the_migrations_is_caught(stack_env: dict[str, str]) -> None:
    metadata = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        copy = table.to_metadata(metadata)
        if table.name == "threads":
            copy.append_column(Column("not_migrated", Text))
    drift = _drift(stack_env["DATABASE_URL"], metadata)
    assert [d[0] for d in drift] == ["add_column"], drift
