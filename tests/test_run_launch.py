"""A run's workflow starts while the API writes the run (api/services/runs.py `_launch`).

- The first turn waits for a row written after the workflow started, and clients still
  see `created` and `queued` before `in_progress`.
- A write that fails ends the workflow it raced with and leaves no events behind.
- A workflow whose row never comes gives up (activities/runs.py `ROW_WAIT_SECONDS`).
- Runs start with the configured workflow task timeout (`RUN_TASK_TIMEOUT_SECONDS`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import activities.runs
import api.services.runs
from activities import turn_writes
from api.services import run_statements
from api.services.run_workflows import start_run
from core import ids
from core.raw_statements import RawDb
from core.settings import Settings
from workflows.run import AssistantRunWorkflow

pytestmark = pytest.mark.usefixtures("worker")


def _event_names(raw: str) -> list[str]:
    return [line.removeprefix("event: ") for line in raw.splitlines()
            if line.startswith("event: ")]


async def _until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
def missed_rows(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run ids for which a first turn looked for its row and did not find it."""
    missed: list[str] = []
    real_start_turn = turn_writes.start_turn

    async def recording_start_turn(db: RawDb, run_id: str) -> turn_writes.TurnStart | None:
        start = await real_start_turn(db, run_id)
        if start is None:
            missed.append(run_id)
        return start

    monkeypatch.setattr(turn_writes, "start_turn", recording_start_turn)
    return missed


def _write_after(monkeypatch: pytest.MonkeyPatch, created: list[str],
                 before_write: Callable[[str], Awaitable[None]]) -> None:
    """Have run creation call `before_write(run id)` just before it writes the run."""
    real_write = run_statements.write

    async def delayed_write(pool: Any, new: run_statements.NewRun) -> None:
        created.append(new.run.id)
        await before_write(new.run.id)
        await real_write(pool, new)

    monkeypatch.setattr(run_statements, "write", delayed_write)


async def _assistant_and_thread(http: httpx.AsyncClient) -> tuple[str, str]:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()["id"]
    thread = (await http.post("/v1/threads", json={"messages": [
        {"role": "user", "content": "[[reply:written late]]"}]})).json()["id"]
    return assistant, thread


async def test_a_run_written_after_its_workflow_started_still_runs(
        http: httpx.AsyncClient, missed_rows: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def once_the_worker_missed_it(run_id: str) -> None:
        await _until(lambda: run_id in missed_rows, "the first turn to miss the row")

    created: list[str] = []
    _write_after(monkeypatch, created, once_the_worker_missed_it)
    assistant, thread = await _assistant_and_thread(http)
    response = await http.post(f"/v1/threads/{thread}/runs",
                               json={"assistant_id": assistant, "stream": True})
    assert response.status_code == 200, response.text
    names = _event_names(response.text)
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names.count("thread.run.in_progress") == 1
    assert names[-2:] == ["thread.run.completed", "done"]
    messages = (await http.get(f"/v1/threads/{thread}/messages", params={"order": "asc"})).json()
    assert [m["content"][0]["text"]["value"] for m in messages["data"]][-1] == "written late"
    assert missed_rows.count(created[0]) >= 1


async def test_a_run_that_cannot_be_written_ends_its_workflow(
        app: FastAPI, http: httpx.AsyncClient, missed_rows: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assistant, thread = await _assistant_and_thread(http)

    async def thread_deleted_meanwhile(run_id: str) -> None:
        await _until(lambda: run_id in missed_rows, "the first turn to miss the row")
        assert (await http.delete(f"/v1/threads/{thread}")).status_code == 200

    created: list[str] = []
    _write_after(monkeypatch, created, thread_deleted_meanwhile)
    response = await http.post(f"/v1/threads/{thread}/runs",
                               json={"assistant_id": assistant, "stream": True})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"No thread found with id '{thread}'."
    run_id = created[0]
    description = await app.state.temporal.get_workflow_handle(run_id).describe()
    assert description.status == WorkflowExecutionStatus.TERMINATED
    assert await app.state.events.last_id(run_id) == "0-0"  # its stream is gone
    async with app.state.raw_db.connection() as conn:
        row = await (await conn.execute("SELECT 1 FROM runs WHERE id = %s", (run_id,))).fetchone()
    assert row is None


async def test_a_workflow_whose_run_never_appears_gives_up(
        app: FastAPI, settings: Settings, missed_rows: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(activities.runs, "ROW_WAIT_SECONDS", 0.2)
    never_written = SimpleNamespace(id=ids.new_id(ids.RUN), thread_id=ids.new_id(ids.THREAD),
                                    assistant_id=ids.new_id(ids.ASSISTANT),
                                    expires_at=int(time.time()) + 600)
    await start_run(app.state.temporal, settings, never_written)
    handle = app.state.temporal.get_workflow_handle_for(AssistantRunWorkflow.run,
                                                        never_written.id)
    # The run failed, so its workflow closes Failed (RunInput.close_as_failed).
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=30)
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "server_error"
    assert missed_rows.count(never_written.id) >= 2  # it looked again before giving up
    async with app.state.raw_db.connection() as conn:
        row = await (await conn.execute("SELECT 1 FROM runs WHERE id = %s",
                                        (never_written.id,))).fetchone()
    assert row is None


async def test_a_run_whose_workflow_cannot_start_fails_visibly(
        app: FastAPI, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []

    async def temporal_down(client: Any, settings: Settings, run: Any) -> None:
        created.append(run.id)
        raise RuntimeError("Temporal is unreachable")

    monkeypatch.setattr(api.services.runs, "start_run", temporal_down)
    assistant, thread = await _assistant_and_thread(http)
    response = await http.post(f"/v1/threads/{thread}/runs", json={"assistant_id": assistant})
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "service_unavailable")
    run = (await http.get(f"/v1/threads/{thread}/runs/{created[0]}")).json()
    assert run["status"] == "failed" and run["last_error"]["code"] == "server_error"
    assert run["failed_at"] is not None and run["expires_at"] is None
    # The failed run does not hold the thread: the next one runs.
    monkeypatch.setattr(api.services.runs, "start_run", start_run)
    response = await http.post(f"/v1/threads/{thread}/runs",
                               json={"assistant_id": assistant, "stream": True})
    assert _event_names(response.text)[-2:] == ["thread.run.completed", "done"]


@pytest.mark.parametrize("seconds", [None, 7.0], ids=["default", "configured"])
async def test_runs_start_with_the_configured_workflow_task_timeout(
        app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        seconds: float | None) -> None:
    """RUN_TASK_TIMEOUT_SECONDS: how long a running model turn may hold a cancel back."""
    monkeypatch.setattr(activities.runs, "ROW_WAIT_SECONDS", 0.2)  # no row: it ends soon
    configured = (settings if seconds is None
                  else settings.model_copy(update={"run_task_timeout_seconds": seconds}))
    run = SimpleNamespace(id=ids.new_id(ids.RUN), thread_id=ids.new_id(ids.THREAD),
                          assistant_id=ids.new_id(ids.ASSISTANT),
                          expires_at=int(time.time()) + 600)
    await start_run(app.state.temporal, configured, run)
    handle = app.state.temporal.get_workflow_handle_for(AssistantRunWorkflow.run, run.id)
    config = (await handle.describe()).raw_description.execution_config
    assert config.default_workflow_task_timeout.ToTimedelta().total_seconds() == (seconds or 5)
    with pytest.raises(WorkflowFailureError):  # no row: the run fails
        await asyncio.wait_for(handle.result(), timeout=30)


def test_the_workflow_task_timeout_setting_is_bounded() -> None:
    for wrong in ("0.5", "121"):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, run_task_timeout_seconds=wrong)


async def test_a_row_written_between_the_turns_two_reads_is_still_started(
        http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first turn's UPDATE misses the row, its SELECT finds it queued (the API wrote it
    in between): the turn moves it to in_progress, so it ends completed, not queued."""
    real_execute = RawDb.execute
    missed: list[bool] = []

    async def execute(self: RawDb, statement: Any, params: Any = None) -> Any:
        if statement is turn_writes._START and not missed:
            missed.append(True)
            return SimpleNamespace(first_mapping=lambda: None)  # as if not yet written
        return await real_execute(self, statement, params)

    monkeypatch.setattr(RawDb, "execute", execute)
    assistant, thread = await _assistant_and_thread(http)
    response = await http.post(f"/v1/threads/{thread}/runs",
                               json={"assistant_id": assistant, "stream": True})
    names = _event_names(response.text)
    assert missed == [True]
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names[-2:] == ["thread.run.completed", "done"]
    runs = (await http.get(f"/v1/threads/{thread}/runs")).json()["data"]
    assert [r["status"] for r in runs] == ["completed"]
