"""Cursor pagination over the `seq` column, OpenAI's list envelope."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from api.errors import invalid


@dataclass(frozen=True)
class ListParams:
    limit: int
    order: Literal["asc", "desc"]
    after: str | None
    before: str | None


async def _list_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query()] = None,
    before: Annotated[str | None, Query()] = None,
) -> ListParams:
    return ListParams(limit=limit, order=order, after=after, before=before)


# async: FastAPI runs a plain `def` dependency in its thread pool.
ListQuery = Annotated[ListParams, Depends(_list_params)]


async def paginate(
    session: AsyncSession,
    table: type[SQLModel],
    params: ListParams,
    to_wire: Callable[[Any], dict[str, Any]],
    *filters: ColumnElement[bool],
) -> dict[str, Any]:
    """One page of `table` rows matching `filters`, as OpenAI's list object.

    `after`/`before` name an object id; its `seq` is the cursor, so pages stay
    stable while new rows arrive.
    """
    seq = table.seq  # type: ignore[attr-defined]
    query = select(table).where(*filters)
    descending = params.order == "desc"
    for cursor, param, forward in ((params.after, "after", True), (params.before, "before", False)):
        if cursor is None:
            continue
        cursor_seq = await session.scalar(
            select(seq).where(table.id == cursor, *filters)  # type: ignore[attr-defined]
        )
        if cursor_seq is None:
            raise invalid(f"Invalid '{param}': no object with id '{cursor}' in this list.", param)
        # "after" walks in the list's order, "before" against it.
        query = query.where(seq < cursor_seq if descending == forward else seq > cursor_seq)
    walk_descending = descending if params.before is None or params.after else not descending
    query = query.order_by(seq.desc() if walk_descending else seq.asc()).limit(params.limit + 1)
    rows: Sequence[Any] = (await session.scalars(query)).all()
    has_more = len(rows) > params.limit
    rows = list(rows[: params.limit])
    if walk_descending != descending:
        rows.reverse()
    return list_envelope([to_wire(row) for row in rows], has_more)


def list_envelope(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's list object (ListResponse's field order) around wire objects."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
