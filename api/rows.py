"""SQL text and parameters for the raw-connection paths (core/rawdb.py), from the ORM tables.

Generated from `core/tables.py`, so a column added there is read and written here too.
Rows come back as namedtuples whose fields are the ORM *attribute* names (`metadata_`),
so `core/wire.py` turns them into wire objects exactly as it does ORM instances.
Rows to insert are plain namespaces with every attribute an ORM instance would have:
building a SQLModel table instance costs ~110 us of CPU (SQLAlchemy's instrumentation),
more than the whole insert statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

from psycopg.types.json import Jsonb
from pydantic_core import PydanticUndefined
from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # compiles types only


@dataclass(frozen=True)
class Column:
    attr: str  # the ORM attribute (`metadata_`)
    name: str  # the SQL column (`metadata`)
    sql_type: str  # for casts: VALUES lists do not take their types from the target table
    json: bool


@cache
def columns(model: type[SQLModel]) -> tuple[Column, ...]:
    """The model's columns, in table order, without generated ones (`seq`, computed)."""
    found = []
    for attribute in inspect(model).column_attrs:
        column = attribute.columns[0]
        if column.identity is not None or column.computed is not None:
            continue
        found.append(Column(attribute.key, column.name, column.type.compile(dialect=_DIALECT),
                            isinstance(column.type, JSONB)))
    return tuple(found)


@cache
def select_list(model: type[SQLModel], alias: str) -> str:
    """`alias.metadata AS metadata_, ...`: a select list named like the ORM attributes."""
    return ", ".join(f"{alias}.{c.name} AS {c.attr}" for c in columns(model))


@cache
def _defaults(model: type[SQLModel]) -> dict[str, Any]:
    values = {}
    for column in columns(model):
        field = model.model_fields.get(column.attr)
        default = None if field is None else field.default
        values[column.attr] = None if default is PydanticUndefined else default
    return values


def new_row(table: type[SQLModel], /, **values: Any) -> SimpleNamespace:
    """What `table(**values)` holds, without the ORM: unnamed attributes take their
    defaults (None for most), as a table model's constructor gives them."""
    unknown = set(values) - set(_defaults(table))
    if unknown:
        raise TypeError(f"{table.__name__} has no columns {sorted(unknown)}")
    return SimpleNamespace(**{**_defaults(table), **values})


def insert_params(model: type[SQLModel], row: Any) -> list[Any]:
    """One row's parameters, in `columns(model)` order.

    A JSON column's None is stored as JSON `null`, not SQL NULL, as the ORM stores it
    (its JSON type's `none_as_null` is off): readers see the same thing either way.
    """
    return [Jsonb(getattr(row, c.attr)) if c.json else getattr(row, c.attr)
            for c in columns(model)]


@cache
def insert_rows_sql(model: type[SQLModel], count: int, where: str = "") -> str:
    """`INSERT ... SELECT` of `count` rows of positional parameters, kept only `where`
    (a condition on other CTEs). One multi-row VALUES list: rows get `seq` in list order."""
    cols = columns(model)
    table = inspect(model).local_table.name
    row = "(" + ", ".join(f"%s::{c.sql_type}" for c in cols) + ")"
    names = ", ".join(c.name for c in cols)
    condition = f" WHERE {where}" if where else ""
    return (f"INSERT INTO {table} ({names}) SELECT * FROM (VALUES "
            f"{', '.join([row] * count)}) AS v{condition}")
