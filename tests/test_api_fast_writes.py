"""The hot writes' shortcuts store what the ORM stores, and their pool heals.

- api/services/run_statements.py: runs made in two statements are stored as the ORM stores them, and
  the thread lock holds under concurrent creates.
- core/rawdb.py: a pooled connection that Postgres closed is replaced, never surfaced.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect, text
from sqlmodel import SQLModel
from temporalio.client import Client

import core.rawdb
from core import ids
from core.rawdb import POOL_SIZE, RawPool
from core.settings import Settings
from core.tables import MessageRow, RunRow, ThreadRow
from tests.fast_path_helpers import serve_app

# --- run creation ------------------------------------------------------------------------

async def _columns(app: FastAPI, table: type[SQLModel], key: str, value: str,
                   skip: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each row's columns as (IS NULL, text): tells JSON null from SQL NULL."""
    names = [c.name for c in inspect(table).local_table.columns
             if c.name not in ("seq", *skip)]
    select = ", ".join(f"{n} IS NULL, {n}::text" for n in names)
    name = inspect(table).local_table.name
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(text(f"SELECT {select} FROM {name} WHERE {key} = :v "
                                        "ORDER BY seq"), {"v": value})).all()
    return [dict(zip(names, zip(row[0::2], row[1::2], strict=True), strict=True))
            for row in rows]


async def _orm_copy(app: FastAPI, table: type[SQLModel], row_id: str,
                    **changes: Any) -> None:
    """Insert through the ORM a copy of a row read through the ORM."""
    async with app.state.sessions() as session:
        row = await session.get(table, row_id)
        assert row is not None
        values = {a.key: getattr(row, a.key) for a in inspect(table).column_attrs
                  if a.key != "seq"}
        session.add(table(**{**values, **changes}))
        await session.commit()


async def _ids(app: FastAPI, table: str, thread_id: str) -> list[str]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT id FROM {table} WHERE thread_id = :t "
                                       "ORDER BY seq"), {"t": thread_id})
        return [str(row[0]) for row in rows]


async def _assert_stored_like_the_orm(app: FastAPI, thread_id: str) -> None:
    """Copy the thread, its messages and its run through the ORM; compare every column."""
    copy = ids.new_id(ids.THREAD)
    await _orm_copy(app, ThreadRow, thread_id, id=copy)
    for message_id in await _ids(app, "messages", thread_id):
        await _orm_copy(app, MessageRow, message_id, id=ids.new_id(ids.MESSAGE), thread_id=copy)
    for run_id in await _ids(app, "runs", thread_id):
        await _orm_copy(app, RunRow, run_id, id=ids.new_id(ids.RUN), thread_id=copy)
    for table, key, skip in ((ThreadRow, "id", ("id",)),
                             (MessageRow, "thread_id", ("id", "thread_id")),
                             (RunRow, "thread_id", ("id", "thread_id"))):
        fast = await _columns(app, table, key, thread_id, skip)
        assert fast, table
        assert fast == await _columns(app, table, key, copy, skip), table


async def test_created_rows_are_stored_as_the_orm_stores_them(settings: Settings) -> None:
    # A task queue no worker polls: nothing but the create paths writes these rows.
    async with serve_app(settings, temporal_task_queue="fast-paths-nobody") as (app, http):
        assistant = (await http.post("/v1/assistants", json={"model": "m"})).json()["id"]
        thread_and_run = await http.post("/v1/threads/runs", json={
            "assistant_id": assistant, "metadata": {"a": "b"}, "thread": {"messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{"type": "text", "text": "y"}]}]}})
        idle = (await http.post("/v1/threads", json={})).json()["id"]
        run = await http.post(f"/v1/threads/{idle}/runs", json={
            "assistant_id": assistant, "additional_instructions": "more",
            "additional_messages": [{"role": "user", "content": "z", "metadata": {"k": "v"}}]})
        runs = [thread_and_run.json(), run.json()]
        try:
            for created in runs:
                await _assert_stored_like_the_orm(app, created["thread_id"])
        finally:  # leave no active run or waiting workflow behind
            async with app.state.engine.begin() as conn:
                await conn.execute(text("UPDATE runs SET status = 'cancelled' "
                                        "WHERE assistant_id = :a"), {"a": assistant})
            for created in runs:
                await app.state.temporal.get_workflow_handle(created["id"]).terminate()


async def _running_runs_of(temporal: Client, thread_id: str) -> set[str]:
    query = "WorkflowType = 'AssistantRun' AND ExecutionStatus = 'Running'"
    return {execution.id async for execution in temporal.list_workflows(query)
            if (await execution.memo()).get("thread_id") == thread_id}


async def test_concurrent_creates_on_one_thread_start_one_run(
        app: FastAPI, http: httpx.AsyncClient) -> None:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()["id"]
    thread = (await http.post("/v1/threads", json={"messages": [
        {"role": "user", "content": "[[delay:3]] [[reply:slow]]"}]})).json()["id"]
    responses = await asyncio.gather(*(
        http.post(f"/v1/threads/{thread}/runs", json={"assistant_id": assistant})
        for _ in range(6)))
    winners = [r.json()["id"] for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert response.status_code == 400
            assert response.json()["error"]["message"] == (
                f"Thread {thread} already has an active run {winners[0]}.")
    # A loser that passed the first check started its workflow beside its write; the
    # write's refusal ended that workflow (visibility follows within moments).
    deadline = time.monotonic() + 15
    while (running := await _running_runs_of(app.state.temporal, thread)) != set(winners):
        assert time.monotonic() < deadline, running
        await asyncio.sleep(0.1)


# --- the raw connection pool -------------------------------------------------------------

async def _backend_pids(pool: RawPool) -> set[int]:
    """Every connection the pool holds: as many checked out at once as it may have."""
    all_out = asyncio.Barrier(POOL_SIZE)

    async def held() -> int:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
            await all_out.wait()
        assert row is not None
        return int(row[0])

    return set(await asyncio.gather(*(held() for _ in range(POOL_SIZE))))


async def _terminate(settings: Settings, pids: set[int]) -> None:
    url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid",
                           (list(pids),))
    await asyncio.sleep(0.2)  # the close reaches the client's sockets


async def test_a_connection_closed_by_postgres_is_replaced(
        settings: Settings, app: FastAPI, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pool: RawPool = app.state.raw_db
    thread = (await http.post("/v1/threads", json={})).json()["id"]
    path = f"/v1/threads/{thread}/messages"
    # Postgres restarted: every pooled connection is closed. Seen on checkout: the closed
    # socket is readable.
    pids = await _backend_pids(pool)
    await _terminate(settings, pids)
    assert (await http.get(path)).status_code == 200
    assert not (await _backend_pids(pool)) & pids
    # Missed on checkout (a restart between the check and the query): the read is retried.
    monkeypatch.setattr(core.rawdb, "_readable", lambda conn: False)
    await _terminate(settings, await _backend_pids(pool))
    response = await http.get(path)
    assert response.status_code == 200, response.text
    assert json.loads(response.content)["object"] == "list"
