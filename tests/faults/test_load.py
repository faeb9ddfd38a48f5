"""200 runs submitted at once, text and function calling mixed: every one reaches a terminal
state, and Postgres (runs by status) and Temporal (closed executions) tell the same story."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import openai
from sqlalchemy import text
from temporalio.client import Client, WorkflowExecutionStatus

from core.db import create_engine
from core.settings import Settings
from tests.faults.helpers import (
    TERMINAL,
    WEATHER_TOOL,
    Workers,
)

RUNS = 200
FUNCTION_EVERY = 3  # every third run calls a function: 67 of 200


async def test_200_concurrent_runs_all_finish_and_postgres_agrees_with_temporal(
    sdk: openai.AsyncOpenAI, workers: Workers, settings: Settings, queue: str
) -> None:
    await workers.start()
    tag = uuid.uuid4().hex[:8]
    plain = await sdk.beta.assistants.create(model="fake-model")
    tooled = await sdk.beta.assistants.create(model="fake-model", tools=[WEATHER_TOOL])
    gate = asyncio.Semaphore(50)

    async def start(i: int) -> tuple[str, str]:
        if i % FUNCTION_EVERY == 0:
            assistant, content = tooled.id, (
                f'load-{tag}-{i} [[call:getCurrentWeather {{"location": "city {i}"}}]] '
                f"[[after_tool:weather {i}]]")
        else:
            assistant, content = plain.id, f"load-{tag}-{i} [[reply:answer {i}]]"
        async with gate:
            run = await sdk.beta.threads.create_and_run(
                assistant_id=assistant,
                thread={"messages": [{"role": "user", "content": content}]})
        return run.thread_id, run.id

    started = await asyncio.gather(*(start(i) for i in range(RUNS)))
    run_ids = [r for _, r in started]
    thread_of = {r: t for t, r in started}
    assert len(set(run_ids)) == RUNS

    engine = create_engine(settings.database_url, pool_size=2)
    temporal = await Client.connect(settings.temporal_address,
                                    namespace=settings.temporal_namespace)
    try:
        async def statuses() -> dict[str, str]:
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT id, status FROM runs WHERE id = ANY(:ids)"),
                                          {"ids": run_ids})
                return {row.id: row.status for row in rows}

        submitted: set[str] = set()
        refused: list[str] = []  # see the note in submit()

        async def submit(run_id: str) -> None:
            async with gate:
                run = await sdk.beta.threads.runs.retrieve(run_id=run_id,
                                                           thread_id=thread_of[run_id])
                assert run.required_action is not None
                calls = run.required_action.submit_tool_outputs.tool_calls
                for _ in range(50):
                    try:
                        await sdk.beta.threads.runs.submit_tool_outputs(
                            run_id=run_id, thread_id=thread_of[run_id],
                            tool_outputs=[{"tool_call_id": c.id, "output": "sunny"}
                                          for c in calls])
                        return
                    except openai.BadRequestError as error:
                        # Known product race (reported, workflows/run.py): Postgres says
                        # requires_action before the workflow has taken in the model turn's
                        # result, and its update validator still sees "in_progress".
                        if 'status "in_progress"' not in str(error):
                            raise
                        refused.append(run_id)
                        await asyncio.sleep(0.1)
                raise AssertionError(f"run {run_id}: tool outputs refused 50 times")

        deadline = time.monotonic() + 240
        while True:
            current = await statuses()
            waiting = [r for r, s in current.items()
                       if s == "requires_action" and r not in submitted]
            submitted.update(waiting)
            await asyncio.gather(*(submit(r) for r in waiting))
            if all(s in TERMINAL for s in current.values()):
                break
            assert time.monotonic() < deadline, (Counter(current.values()), workers.logs())
            await asyncio.sleep(0.5)

        if refused:
            print(f"{len(refused)} submissions refused as 'in_progress' while Postgres said "
                  f"requires_action, on {len(set(refused))} runs")
        by_status = Counter((await statuses()).values())
        assert by_status == {"completed": RUNS}, by_status
        assert len(submitted) == len(range(0, RUNS, FUNCTION_EVERY))

        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT run_id, count(*) AS n FROM messages WHERE run_id = ANY(:ids) "
                "AND role = 'assistant' GROUP BY run_id"), {"ids": run_ids})
            replies = {row.run_id: row.n for row in rows}
            rows = await conn.execute(text(
                "SELECT run_id, count(*) AS n FROM run_steps WHERE run_id = ANY(:ids) "
                "AND type = 'message_creation' GROUP BY run_id"), {"ids": run_ids})
            message_steps = {row.run_id: row.n for row in rows}
        assert replies == dict.fromkeys(run_ids, 1)
        assert message_steps == dict.fromkeys(run_ids, 1)

        # Temporal's view: one closed, completed execution per run id, nothing else on the queue.
        executions: dict[str, WorkflowExecutionStatus | None] = {}
        query = f"TaskQueue = '{queue}'"
        # Visibility is eventually consistent: give it a moment to catch up with the closes.
        deadline = time.monotonic() + 30
        while True:
            executions = {w.id: w.status async for w in temporal.list_workflows(query)}
            done = Counter(executions.values())
            if done.get(WorkflowExecutionStatus.COMPLETED) == RUNS or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert set(executions) == set(run_ids)
        assert done == {WorkflowExecutionStatus.COMPLETED: RUNS}, done
        closed = await temporal.count_workflows(f"{query} AND ExecutionStatus = 'Completed'")
        assert closed.count == RUNS
        running = await temporal.count_workflows(f"{query} AND ExecutionStatus = 'Running'")
        assert running.count == 0
    finally:
        await engine.dispose()
