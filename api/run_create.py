"""Creating runs in two SQL statements on a raw connection (core/rawdb.py).

Through the ORM, `POST /threads/runs` made ~7 round trips (ping, assistant, thread,
each message, run, commit) and `POST /threads/{id}/runs` ~9, ~12 ms of API CPU each.
Here: one read (the assistant, or the thread's state and the assistant together), then
one write statement whose CTEs insert everything at once; in autocommit a statement is
its own transaction, so the thread, its messages and the run appear together or not
at all. The rows are what the ORM paths write (api/rows.py), the run is built by the
same `new_run_values`, so responses and events are unchanged.

Messages with file_search attachments need their thread's vector store
(api/attachments.py): those requests keep the ORM path (api/routers/runs.py).

The write statement is not run here but handed to `launch`, which runs it while the
run's workflow start is on its way to Temporal (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, Protocol

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from redis.exceptions import RedisError
from temporalio.client import Client

from api.errors import ApiError, invalid, not_found
from api.routers.messages import new_message_values
from api.routers.threads import new_thread_values
from api.rows import insert_params, insert_rows_sql, new_row, select_list
from api.run_engine import abandon_run, start_run
from api.schemas.common import response_format_to_wire, tool_resources_to_wire, tools_to_wire
from api.schemas.runs import CreateRun, CreateThreadAndRun, RunOptions
from api.schemas.threads import CreateThread
from core import ids
from core.events import RunEvents
from core.rawdb import RawPool
from core.settings import Settings
from core.tables import ACTIVE_RUN_STATUSES, AssistantRow, MessageRow, RunRow, ThreadRow
from core.wire import run_to_wire

# Writes a checked new run (and what comes with it); raises the API's error if it cannot.
RunWrite = Callable[[], Awaitable[None]]


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


# The partial unique index's own predicate (core/tables.py), so the index answers.
_ACTIVE = "status IN (" + ", ".join(f"'{s}'" for s in ACTIVE_RUN_STATUSES) + ")"
_ASSISTANT_SQL = (f"SELECT {select_list(AssistantRow, 'a')} FROM assistants a "
                  "WHERE a.id = %s AND a.project_id = %s")
# The thread's state and the assistant in one read; no row: not the project's thread.
_THREAD_SQL = (f"SELECT (SELECT r.id FROM runs r WHERE r.thread_id = t.id AND r.{_ACTIVE} "
               f"LIMIT 1) AS active_run, {select_list(AssistantRow, 'a')} FROM threads t "
               "LEFT JOIN assistants a ON a.id = %s AND a.project_id = %s "
               "WHERE t.id = %s AND t.project_id = %s")


# One statement text per message count: at most 33 each (requests take up to 32 messages).
@cache
def _run_on_thread_sql(messages: int) -> str:
    """Lock the thread (as message creation does), check it has no active run, insert the
    messages and the run if so; the row says which: (thread found, active run, inserted).

    The active-run check sees the statement's snapshot, taken before any wait for the
    lock: a run committed meanwhile by the lock's holder is caught by the partial
    unique index instead (UniqueViolation), as the ORM path's IntegrityError was.
    """
    ok = "EXISTS (SELECT FROM t) AND NOT EXISTS (SELECT FROM busy)"
    ctes = ["t AS (SELECT id FROM threads WHERE id = %s AND project_id = %s FOR UPDATE)",
            f"busy AS (SELECT id FROM runs WHERE thread_id = %s AND {_ACTIVE} LIMIT 1)"]
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


async def _fetch(pool: RawPool, sql: str, *params: Any) -> Any | None:
    async def query(conn: AsyncConnection[Any]) -> Any | None:
        cursor = conn.cursor(row_factory=namedtuple_row)
        await cursor.execute(sql, params)
        return await cursor.fetchone()

    return await pool.read(query)


def _busy(thread_id: str, run_id: str) -> ApiError:
    return invalid(f"Thread {thread_id} already has an active run {run_id}.")


async def create_run(pool: RawPool, project: str, thread_id: str, body: CreateRun,
                     settings: Settings) -> tuple[Any, RunWrite]:
    """POST /threads/{thread_id}/runs without file_search attachments: the new run, checked
    against its thread and assistant, and the statement that writes it (for `launch`)."""
    found = await _fetch(pool, _THREAD_SQL, body.assistant_id, project, thread_id, project)
    # The ORM path's order: the thread, its lock, then the assistant.
    if found is None:
        raise not_found("thread", thread_id)
    if found.active_run is not None:
        raise _busy(thread_id, found.active_run)
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

    async def write() -> None:
        # The read above saw the thread idle; this statement checks again under its lock.
        async with pool.connection() as conn:
            try:
                cursor = await conn.execute(_run_on_thread_sql(len(messages)), params)
            except UniqueViolation:
                active = await conn.execute(
                    f"SELECT id FROM runs WHERE thread_id = %s AND {_ACTIVE} LIMIT 1",
                    (thread_id,))
                row = await active.fetchone()
                if row is not None:
                    raise _busy(thread_id, row[0]) from None
                raise
            thread_found, active_run, inserted = (await cursor.fetchone()
                                                  or (False, None, False))
        if not thread_found:
            raise not_found("thread", thread_id)
        if not inserted:  # the only other reason: an active run
            raise _busy(thread_id, str(active_run))

    return run, write


async def create_thread_and_run(pool: RawPool, project: str, body: CreateThreadAndRun,
                                settings: Settings) -> tuple[Any, Any, RunWrite]:
    """POST /threads/runs without file_search attachments: the thread, the run and the
    statement that writes them (for `launch`)."""
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

    async def write() -> None:
        async with pool.connection() as conn:
            await conn.execute(_thread_and_run_sql(len(messages)), params)

    return thread, run, write


async def launch(pool: RawPool, temporal: Client, settings: Settings, events: RunEvents,
                 run: Any, first: list[tuple[str, Any]], write: RunWrite | None = None) -> None:
    """Announce the run on its event stream, write it (`write`; None: written already) and
    start its workflow.

    With `write`, the workflow's start goes out first and the announcement and the write
    happen while Temporal takes it (its RPC is ~10 ms; they are ~2-3 ms off the first
    token). Still, a worker never announces the run before we do: the events go out
    before the write, and the worker waits for the row (activities/runs.py). Nobody else
    can read either before this request answers, the run's id being new. A write that
    fails ends the workflow it started, and removes the events.
    """
    wire = run_to_wire(run)
    started: BaseException | None
    announce = events.publish(run.id, *first, ("thread.run.created", wire),
                              ("thread.run.queued", wire))
    if write is None:
        # The row is there: a worker could announce the run as soon as it starts.
        await announce
        started = await _start(temporal, settings, run)
    else:
        async def announce_and_write() -> None:
            await announce
            await write()

        started, written = await asyncio.gather(
            _start(temporal, settings, run), announce_and_write(), return_exceptions=True)
        if isinstance(written, BaseException):
            if started is None:
                await abandon_run(temporal, run.id)
            with contextlib.suppress(RedisError):  # unread; it would expire in a day
                await events.discard(run.id)
            raise written
    if started is not None:
        # The row exists but no workflow will ever move it: end it visibly.
        run.status, run.failed_at, run.expires_at = "failed", int(time.time()), None
        run.last_error = {"code": "server_error", "message": "The run could not be started."}
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE runs SET status = %s, failed_at = %s, expires_at = %s, last_error = %s "
                "WHERE id = %s",
                (run.status, run.failed_at, run.expires_at, Jsonb(run.last_error), run.id))
        raise ApiError(503, "The run engine is unavailable; retry shortly.", type="server_error",
                       code="service_unavailable") from started


async def _start(temporal: Client, settings: Settings, run: Any) -> Exception | None:
    """Start the run's workflow: None, or why it could not be started."""
    try:
        await start_run(temporal, settings, run)
    except Exception as error:
        return error
    return None
