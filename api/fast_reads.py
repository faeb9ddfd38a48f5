"""The hot reads, one statement each on a raw connection (core/rawdb.py).

Same scoping as api/lookups.py: a child (run, message) is found through its thread, and
only if the thread is the caller's project's; anything else is "not found". A list page
checks the thread, resolves the cursors and reads the page in one statement; the
semantics are api/pagination.py's (`seq` cursors, `after` walks in the list's order,
`before` against it), and so are the errors and their order.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Response
from psycopg import AsyncConnection
from psycopg.rows import namedtuple_row
from sqlalchemy import inspect
from sqlmodel import SQLModel

from api.errors import invalid, not_found
from api.pagination import ListParams
from api.rows import select_list
from api.schemas.messages import MessageObject
from api.schemas.runs import RunObject
from api.wire_json import json_response, list_page, ordered
from core.rawdb import RawPool
from core.tables import ACTIVE_RUN_STATUSES, MessageRow, RunRow
from core.wire import message_to_wire, run_to_wire

POLL_AFTER_MS = "100"


def _table(model: type[SQLModel]) -> str:
    return str(inspect(model).local_table.name)


@cache
def _child_sql(model: type[SQLModel]) -> str:
    return (f"SELECT {select_list(model, 'x')} FROM {_table(model)} x "
            "JOIN threads t ON t.id = x.thread_id "
            "WHERE x.id = %s AND x.thread_id = %s AND t.project_id = %s")


async def child(pool: RawPool, model: type[SQLModel], project: str, thread_id: str,
                object_id: str) -> Any | None:
    """A run or message of the project's thread (a namedtuple of the ORM attributes)."""
    async def query(conn: AsyncConnection[Any]) -> Any | None:
        cursor = conn.cursor(row_factory=namedtuple_row)
        await cursor.execute(_child_sql(model), (object_id, thread_id, project))
        return await cursor.fetchone()

    return await pool.read(query)


@cache
def _page_sql(model: type[SQLModel], descending: bool, after: bool, before: bool,
              by_run: bool) -> str:
    table = _table(model)

    def scope(thread: str) -> str:
        return f"x.thread_id = {thread}" + (" AND x.run_id = %(run_id)s" if by_run else "")

    def cursor_seq(param: str, given: bool) -> str:
        # A cursor must name an object of this very list (same thread, same filter).
        if not given:
            return "NULL::bigint"
        return f"(SELECT x.seq FROM {table} x WHERE x.id = %({param})s AND {scope('t.id')})"

    conditions = ""
    if after:
        conditions += f" AND x.seq {'<' if descending else '>'} c.after_seq"
    if before:
        conditions += f" AND x.seq {'>' if descending else '<'} c.before_seq"
    # `before` alone walks against the list's order (then the page is reversed).
    walk = "DESC" if (descending if (not before or after) else not descending) else "ASC"
    return (
        "SELECT c.after_seq, c.before_seq, p.* FROM ("
        f"SELECT t.id, {cursor_seq('after', after)} AS after_seq, "
        f"{cursor_seq('before', before)} AS before_seq FROM threads t "
        "WHERE t.id = %(thread_id)s AND t.project_id = %(project)s) AS c "
        f"LEFT JOIN LATERAL (SELECT x.seq AS seq_, {select_list(model, 'x')} FROM {table} x "
        f"WHERE {scope('c.id')}{conditions} ORDER BY x.seq {walk} LIMIT %(limit)s) AS p ON true "
        f"ORDER BY p.seq_ {walk}"
    )


async def page(pool: RawPool, model: type[SQLModel], project: str, thread_id: str,
               params: ListParams, run_id: str | None = None) -> tuple[list[Any], bool]:
    """(one page of the thread's rows in the list's order, has_more); 404 for a thread
    that is not the project's, 400 for a cursor that is not in the list."""
    descending = params.order == "desc"
    sql = _page_sql(model, descending, params.after is not None, params.before is not None,
                    run_id is not None)
    values = {"thread_id": thread_id, "project": project, "after": params.after,
              "before": params.before, "run_id": run_id, "limit": params.limit + 1}

    async def query(conn: AsyncConnection[Any]) -> list[Any]:
        cursor = conn.cursor(row_factory=namedtuple_row)
        await cursor.execute(sql, values)
        return await cursor.fetchall()

    rows = await pool.read(query)
    if not rows:
        raise not_found("thread", thread_id)
    for param, seq in (("after", rows[0].after_seq), ("before", rows[0].before_seq)):
        cursor = getattr(params, param)
        if cursor is not None and seq is None:
            raise invalid(f"Invalid '{param}': no object with id '{cursor}' in this list.",
                          param)
    found = [row for row in rows if row.id is not None]  # an empty page: one row of NULLs
    has_more = len(found) > params.limit
    found = found[: params.limit]
    if params.before is not None and params.after is None:
        found.reverse()
    return found, has_more


# --- whole responses: shared by the routes and by api/fast_lane.py -------------------

async def run_response(pool: RawPool, project: str, thread_id: str, run_id: str) -> Response:
    run = await child(pool, RunRow, project, thread_id, run_id)
    if run is None:
        raise not_found("run", run_id)
    # Clients poll active runs; a short hint keeps the SDK's `create_and_poll` snappy.
    active = run.status in ACTIVE_RUN_STATUSES
    headers = {"openai-poll-after-ms": POLL_AFTER_MS} if active else None
    return json_response(ordered(RunObject, run_to_wire(run)), headers)


async def runs_response(pool: RawPool, project: str, thread_id: str,
                        params: ListParams) -> Response:
    rows, has_more = await page(pool, RunRow, project, thread_id, params)
    return json_response(list_page(RunObject, rows, run_to_wire, has_more))


async def message_response(pool: RawPool, project: str, thread_id: str,
                           message_id: str) -> Response:
    row = await child(pool, MessageRow, project, thread_id, message_id)
    if row is None:
        raise not_found("message", message_id)
    return json_response(ordered(MessageObject, message_to_wire(row)))


async def messages_response(pool: RawPool, project: str, thread_id: str, params: ListParams,
                            run_id: str | None = None) -> Response:
    rows, has_more = await page(pool, MessageRow, project, thread_id, params, run_id)
    return json_response(list_page(MessageObject, rows, message_to_wire, has_more))
