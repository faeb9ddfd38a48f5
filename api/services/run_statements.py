"""The statements that create a run: one read, then one write, on a raw connection
(core/rawdb.py).

Through the ORM, `POST /threads/runs` made ~7 round trips (ping, assistant, thread,
each message, run, commit) and `POST /threads/{id}/runs` ~9, ~12 ms of API CPU each.
Here: one read (the assistant, or the thread's state and the assistant together), then
one write statement whose CTEs insert everything at once; in autocommit a statement is
its own transaction, so the thread, its messages and the run appear together or not
at all. The rows are what the ORM path writes (api/rows.py; the same `new_*_values`),
so responses and events are unchanged.

Requests that refer to files or stores keep the ORM path (api/services/runs.py). The
write is run by the run service's launch, beside the workflow's start (see there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import namedtuple_row

from api.errors import not_found
from api.lookups import thread_busy
from api.rows import insert_params, insert_rows_sql, new_row, select_list
from api.schemas.common import response_format_to_wire, tool_resources_to_wire, tools_to_wire
from api.schemas.runs import CreateRun, CreateThreadAndRun, RunOptions
from api.schemas.threads import CreateThread
from api.services.messages import new_message_values
from api.services.threads import new_thread_values
from core import ids
from core.rawdb import RawPool
from core.settings import Settings
from core.tables import AssistantRow, MessageRow, RunRow, ThreadRow


class AssistantFields(Protocol):
    """What a run takes from its assistant: an AssistantRow, or a row read by SQL."""

    id: str
    model: str
    instructions: str | None
    tools: list[Any]
    temperature: float | None
    top_p: float | None
    response_format: Any


def new_run_values(thread_id: str, assistant: AssistantFields, body: RunOptions,
                   settings: Settings, extra_instructions: str | None) -> dict[str, Any]:
    """A new run's columns: for `RunRow(**...)`, or api/rows.py's `new_row`."""
    now = int(time.time())
    instructions = body.instructions if body.instructions is not None else assistant.instructions
    if extra_instructions:
        instructions = (f"{instructions}\n{extra_instructions}" if instructions
                        else extra_instructions)
    given = body.model_fields_set
    return {
        "id": ids.new_id(ids.RUN),
        "thread_id": thread_id,
        "assistant_id": assistant.id,
        "created_at": now,
        "status": "queued",
        "model": body.model or assistant.model,
        "instructions": instructions,
        "tools": tools_to_wire(body.tools) if body.tools is not None else assistant.tools,
        "metadata_": body.metadata or {},
        "expires_at": now + settings.run_expiry_seconds,
        "temperature": body.temperature if "temperature" in given else assistant.temperature,
        "top_p": body.top_p if "top_p" in given else assistant.top_p,
        "max_prompt_tokens": body.max_prompt_tokens,
        "max_completion_tokens": body.max_completion_tokens,
        "truncation_strategy": (body.truncation_strategy.model_dump() if body.truncation_strategy
                                else {"type": "auto", "last_messages": None}),
        "tool_choice": (body.tool_choice if isinstance(body.tool_choice, str | None)
                        else body.tool_choice.model_dump()) or "auto",
        "parallel_tool_calls": body.parallel_tool_calls,
        "response_format": (response_format_to_wire(body.response_format)
                            or assistant.response_format or "auto"),
    }


# The thread lock in SQL: the partial unique index's own predicate (core/tables.py), so
# the index answers.
_ACTIVE = next(str(index.dialect_options["postgresql"]["where"])
               for index in RunRow.__table__.indexes  # type: ignore[attr-defined]
               if index.name == "runs_one_active_per_thread")


def _active_run_sql(thread: str) -> str:
    return f"SELECT id FROM runs WHERE thread_id = {thread} AND {_ACTIVE} LIMIT 1"


_ASSISTANT_SQL = (f"SELECT {select_list(AssistantRow, 'a')} FROM assistants a "
                  "WHERE a.id = %s AND a.project_id = %s")
# The thread's state and the assistant in one read; no row: not the project's thread.
_THREAD_SQL = (f"SELECT ({_active_run_sql('t.id')}) AS active_run, "
               f"{select_list(AssistantRow, 'a')} FROM threads t "
               "LEFT JOIN assistants a ON a.id = %s AND a.project_id = %s "
               "WHERE t.id = %s AND t.project_id = %s")


# One statement text per message count: at most 33 each (requests take up to 32 messages).
@cache
def _run_on_thread_sql(messages: int) -> str:
    """Lock the thread (as message creation does), check it has no active run, insert the
    messages and the run if so; the row says which: (thread found, active run, inserted).

    The active-run check sees the statement's snapshot, taken before any wait for the
    lock: a run committed meanwhile by the lock's holder is caught by the partial
    unique index instead (UniqueViolation), as the ORM path's IntegrityError is.
    """
    ok = "EXISTS (SELECT FROM t) AND NOT EXISTS (SELECT FROM busy)"
    ctes = ["t AS (SELECT id FROM threads WHERE id = %s AND project_id = %s FOR UPDATE)",
            f"busy AS ({_active_run_sql('%s')})"]
    if messages:
        ctes.append(f"m AS ({insert_rows_sql(MessageRow, messages, ok)})")
    ctes.append(f"r AS ({insert_rows_sql(RunRow, 1, ok)} RETURNING 1)")
    return (f"WITH {', '.join(ctes)} "
            "SELECT EXISTS (SELECT FROM t), (SELECT id FROM busy), EXISTS (SELECT FROM r)")


@cache
def _thread_and_run_sql(messages: int) -> str:
    ctes = [f"t AS ({insert_rows_sql(ThreadRow, 1)})"]
    if messages:
        ctes.append(f"m AS ({insert_rows_sql(MessageRow, messages)})")
    return f"WITH {', '.join(ctes)} {insert_rows_sql(RunRow, 1)}"


@dataclass(frozen=True, slots=True)
class NewRun:
    """A checked new run, not yet written, and the one statement that writes it."""

    run: Any  # api/rows.py's plain row
    thread: Any | None  # the thread the statement creates too; None: the run's exists
    sql: str
    params: list[Any]


async def _fetch(pool: RawPool, sql: str, *params: Any) -> Any | None:
    async def query(conn: AsyncConnection[Any]) -> Any | None:
        cursor = conn.cursor(row_factory=namedtuple_row)
        await cursor.execute(sql, params)
        return await cursor.fetchone()

    return await pool.read(query)


async def prepare_run(pool: RawPool, project: str, thread_id: str, body: CreateRun,
                      settings: Settings) -> NewRun:
    """POST /threads/{thread_id}/runs: the new run, checked against its thread and
    assistant (one read), and its messages."""
    found = await _fetch(pool, _THREAD_SQL, body.assistant_id, project, thread_id, project)
    # The ORM path's order: the thread, its lock, then the assistant.
    if found is None:
        raise not_found("thread", thread_id)
    if found.active_run is not None:
        raise thread_busy(thread_id, found.active_run)
    if found.id is None:
        raise not_found("assistant", body.assistant_id)
    now = int(time.time())
    messages = [new_row(MessageRow, **new_message_values(thread_id, message, now))
                for message in body.additional_messages or []]
    run = new_row(RunRow, **new_run_values(thread_id, found, body, settings,
                                           body.additional_instructions))
    params = [thread_id, project, thread_id]
    for message in messages:
        params += insert_params(MessageRow, message)
    params += insert_params(RunRow, run)
    return NewRun(run, None, _run_on_thread_sql(len(messages)), params)


async def prepare_thread_and_run(pool: RawPool, project: str, body: CreateThreadAndRun,
                                 settings: Settings) -> NewRun:
    """POST /threads/runs: the new thread, its messages and the run, checked against the
    assistant (one read)."""
    assistant = await _fetch(pool, _ASSISTANT_SQL, body.assistant_id, project)
    if assistant is None:
        raise not_found("assistant", body.assistant_id)
    thread_body = body.thread or CreateThread()
    now = int(time.time())
    thread = new_row(ThreadRow, **new_thread_values(project, thread_body, now))
    messages = [new_row(MessageRow, **new_message_values(thread.id, message, now))
                for message in thread_body.messages]
    run = new_row(RunRow, **new_run_values(thread.id, assistant, body, settings, None))
    run.tool_resources = tool_resources_to_wire(body.tool_resources)
    params = insert_params(ThreadRow, thread)
    for message in messages:
        params += insert_params(MessageRow, message)
    params += insert_params(RunRow, run)
    return NewRun(run, thread, _thread_and_run_sql(len(messages)), params)


async def write(pool: RawPool, new: NewRun) -> None:
    """Run `new`'s statement; the API's error if it did not write (thread gone or busy)."""
    async with pool.connection() as conn:
        if new.thread is not None:  # a new thread: nothing can stand in the way
            await conn.execute(new.sql, new.params)
            return
        # The read saw the thread idle; the statement checks again under the thread's lock.
        thread_id = new.run.thread_id
        try:
            cursor = await conn.execute(new.sql, new.params)
        except UniqueViolation:
            active = await conn.execute(_active_run_sql("%s"), (thread_id,))
            row = await active.fetchone()
            if row is not None:
                raise thread_busy(thread_id, row[0]) from None
            raise
        thread_found, active_run, inserted = await cursor.fetchone() or (False, None, False)
    if not thread_found:
        raise not_found("thread", thread_id)
    if not inserted:  # the only other reason: an active run
        raise thread_busy(thread_id, str(active_run))
