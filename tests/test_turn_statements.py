"""Postgres round trips of a model turn, counted: a regression guard, never a timing.

The worker's Postgres work is on the hot path of every run: it was half of the
worker's CPU per run, and what runs before the model call and its first streamed
row delays the first token. So each text turn and function round trip is held to
the count it was tuned to (round trips: statements, BEGIN and COMMIT per transaction,
and the pool's pre-ping per checkout). Counted on every engine of the test process,
keeping only work done inside an activity of the run under test (the API, in the
same process, runs outside any). The hot statements run on raw connections
(core/raw_statements.py), counted by wrapping `RawDb.execute`; a checkout of the raw pool
costs no round trip (no pre-ping), so "checkouts" counts SQLAlchemy's only: a turn
that falls back to the ORM shows up there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import Table, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import Pool
from temporalio import activity

from activities.run_writes import MESSAGES, RUNS, STEPS
from core.raw_statements import CompiledStatement, RawDb, RawResult
from core.settings import Settings
from core.tables import MessageRow, RunRow, RunStepRow
from core.wire import (
    message_columns_to_wire,
    message_to_wire,
    run_columns_to_wire,
    run_to_wire,
    step_columns_to_wire,
    step_to_wire,
)
from tests.test_streaming import _parse_sse

pytestmark = pytest.mark.usefixtures("worker")

# (activity type, what) per run id; what: a statement's first words, "begin", "checkout".
Seen = dict[str, Counter[tuple[str, str]]]


def _where() -> tuple[str, str] | None:
    if not activity.in_activity():
        return None
    info = activity.info()
    return info.workflow_id or "", info.activity_type


@contextmanager
def counting() -> Iterator[Seen]:
    seen: Seen = {}
    in_transaction: set[int] = set()  # the RawDb objects whose BEGIN was counted

    def note(what: str) -> None:
        where = _where()
        if where is not None:
            seen.setdefault(where[0], Counter())[(where[1], what)] += 1

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        note(" ".join(sql.split()[:3]))

    def begin(conn: Any) -> None:
        # In autocommit mode no BEGIN (nor COMMIT) reaches Postgres.
        note("autocommit" if conn.connection.dbapi_connection.autocommit else "begin")

    def checkout(*args: Any) -> None:
        note("checkout")

    raw_execute = RawDb.execute

    async def execute_raw(db: RawDb, compiled: CompiledStatement,
                          parameters: Mapping[str, Any] | None = None) -> RawResult:
        if db.transaction and id(db) not in in_transaction:
            in_transaction.add(id(db))
            note("begin")
        note(" ".join(compiled.sql.split()[:3]))
        return await raw_execute(db, compiled, parameters)

    hooks: list[tuple[Any, str, Any]] = [(Engine, "before_cursor_execute", statement),
                                         (Engine, "begin", begin), (Pool, "checkout", checkout)]
    for target, name, fn in hooks:
        event.listen(target, name, fn)
    # assignment: mypy types a method read off the class with `self` twice (its own quirk).
    RawDb.execute = execute_raw  # type: ignore[method-assign, assignment]
    try:
        yield seen
    finally:
        RawDb.execute = raw_execute  # type: ignore[method-assign]
        for target, name, fn in hooks:
            event.remove(target, name, fn)


def _totals(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    """statements, transactions and SQLAlchemy connection checkouts."""
    totals = {"statements": 0, "transactions": 0, "checkouts": 0}
    for (_, what), n in counts.items():
        if what == "autocommit":
            continue
        key = {"begin": "transactions", "checkout": "checkouts"}.get(what, "statements")
        totals[key] += n
    return totals


async def _assistant(client: openai.AsyncOpenAI, model: str = "fake-model", **extra: Any) -> str:
    assistant = await client.beta.assistants.create(model=model, **extra)
    return assistant.id


async def test_a_text_turn(client: openai.AsyncOpenAI) -> None:
    assistant_id = await _assistant(client)
    with counting() as seen:
        run = await client.beta.threads.create_and_run_poll(
            assistant_id=assistant_id, poll_interval_ms=20,
            thread={"messages": [{"role": "user", "content": "count [[reply:Counted.]]"}]})
    assert run.status == "completed", run.last_error
    print(f"\ntext turn: {_totals(seen[run.id])} {dict(seen[run.id])}")
    assert _totals(seen[run.id]) == {"statements": 3, "transactions": 0, "checkouts": 0}


async def test_a_function_round_trip(client: openai.AsyncOpenAI) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    assistant_id = await _assistant(client, tools=[tool])
    call = json.dumps({"q": "x"})
    with counting() as seen:
        run = await client.beta.threads.create_and_run_poll(
            assistant_id=assistant_id, poll_interval_ms=20, thread={"messages": [
                {"role": "user", "content": f"count [[call:lookup {call}]] [[after_tool:Done.]]"}]})
        assert run.status == "requires_action", run.last_error
        assert run.required_action is not None
        calls = run.required_action.submit_tool_outputs.tool_calls
        run = await client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id, thread_id=run.thread_id, poll_interval_ms=20,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "found"}])
    assert run.status == "completed", run.last_error
    print(f"\nfunction round trip: {_totals(seen[run.id])} {dict(seen[run.id])}")
    assert _totals(seen[run.id]) == {"statements": 8, "transactions": 0, "checkouts": 0}


def _same(streamed: str, fetched: httpx.Response) -> dict[str, Any]:
    """The object a GET returns (which orders keys as its response model does)."""
    assert fetched.status_code == 200, fetched.text
    assert json.loads(streamed) == fetched.json()
    return json.loads(streamed)  # type: ignore[no-any-return]


async def test_streamed_objects_are_what_a_get_returns(http: httpx.AsyncClient,
                                                       settings: Settings) -> None:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    async with http.stream("POST", "/v1/threads/runs", json={
            "assistant_id": assistant["id"], "stream": True, "thread": {
                "messages": [{"role": "user", "content": "[[reply:same shape]]"}]}},
            ) as response:
        raw = (await response.aread()).decode()
    events = {f["event"]: f["data"] for f in _parse_sse(raw)}
    run = json.loads(events["thread.run.completed"])
    base = f"/v1/threads/{run['thread_id']}"
    _same(events["thread.run.completed"], await http.get(f"{base}/runs/{run['id']}"))
    message = _same(events["thread.message.completed"], await http.get(
        f"{base}/messages/{json.loads(events['thread.message.completed'])['id']}"))
    step = _same(events["thread.run.step.completed"], await http.get(
        f"{base}/runs/{run['id']}/steps/{json.loads(events['thread.run.step.completed'])['id']}"))
    assert json.loads(events["thread.message.created"])["content"] == []
    assert run["usage"]["total_tokens"] == step["usage"]["total_tokens"] > 0

    # Events come from Core rows (RETURNING): the very bytes of the ORM rows' wire shapes.
    engine = create_async_engine(settings.database_url)
    try:
        async with AsyncSession(engine) as session:

            async def columns(table: Table, key: str) -> Mapping[Any, Any]:
                return (await session.execute(select(table).where(table.c.id == key))
                        ).mappings().one()

            run_row = await session.get(RunRow, run["id"])
            message_row = await session.get(MessageRow, message["id"])
            step_row = await session.get(RunStepRow, step["id"])
            assert run_row and message_row and step_row
            assert json.dumps(run_to_wire(run_row)) == json.dumps(
                run_columns_to_wire(await columns(RUNS, run["id"])))
            assert json.dumps(message_to_wire(message_row)) == json.dumps(
                message_columns_to_wire(await columns(MESSAGES, message["id"])))
            assert json.dumps(step_to_wire(step_row)) == json.dumps(
                step_columns_to_wire(await columns(STEPS, step["id"])))
    finally:
        await engine.dispose()


async def test_text_with_tool_calls(client: openai.AsyncOpenAI, settings: Settings) -> None:
    """A turn that writes some text and calls a function (Anthropic's models do): its
    message and step, the calls' step and requires_action commit together."""
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    assistant_id = await _assistant(client, model="claude-sonnet-4-5", tools=[tool])
    text = '[[preamble:Checking.]] [[call:lookup {"q": "x"}]] [[after_tool:Found it.]]'
    with counting() as seen:
        run = await client.beta.threads.create_and_run_poll(
            assistant_id=assistant_id, poll_interval_ms=20,
            thread={"messages": [{"role": "user", "content": text}]})
        assert run.status == "requires_action", run.last_error
        assert run.required_action is not None
        calls = run.required_action.submit_tool_outputs.tool_calls
        steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id,
                                                          order="asc")
        assert [(s.type, s.status, bool(s.usage)) for s in steps.data] == [
            ("message_creation", "completed", False), ("tool_calls", "in_progress", True)]
        run = await client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id, thread_id=run.thread_id, poll_interval_ms=20,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "found"}])
    assert run.status == "completed", run.last_error
    messages = await client.beta.threads.messages.list(thread_id=run.thread_id, order="asc")
    assert [m.content[0].text.value for m in messages.data[1:]] == [  # type: ignore[union-attr]
        "Checking.", "Found it."]
    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id)
    assert run.usage is not None
    assert run.usage.total_tokens == sum(s.usage.total_tokens for s in steps.data if s.usage)
    # Only the turn with text and calls needs a transaction (its end is 2 statements).
    assert _totals(seen[run.id]) == {"statements": 10, "transactions": 1, "checkouts": 0}
