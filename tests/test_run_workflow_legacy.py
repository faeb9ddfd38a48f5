"""Runs started before the model turn became a local activity (RunInput without
`local_model_turn`) keep running it as a regular activity, retried by Temporal, for every
turn they still have: a run parked in requires_action during an upgrade resumes this way.
Time-skipping test server, mocked activities (tests/workflow_doubles.py).
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from tests.workflow_doubles import (  # time_skipping_env: the `env` fixture
    Recorder,
    Run,
    outputs,
    started_run,
    submit,
    time_skipping_env,  # noqa: F401
    wait_for_status,
)
from workflows.types import (
    FinishInput,
    ModelTurnInput,
    ModelTurnResult,
    RetrySettings,
    RunInput,
    RunResult,
)


async def _event_types(run: Run) -> list[int]:
    return [event.event_type async for event in run.handle.fetch_history_events()]


def test_an_input_without_the_field_means_the_regular_activity() -> None:
    assert RunInput("run_1", "thread_1", "asst_1", expires_at=0).local_model_turn is False


async def test_function_round_trip_runs_regular_activities(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec, local_model_turn=False) as run:
        await wait_for_status(run.handle, "requires_action")
        await submit(run.handle, outputs("call_a"))
        assert await run.handle.result() == RunResult("completed")
        types = await _event_types(run)
    assert rec.inputs("model_turn") == [ModelTurnInput(run.run_id, 1),
                                        ModelTurnInput(run.run_id, 2)]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in types
    # record_tool_outputs is a local activity on both paths: one marker, not the turn's.
    assert types.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 1


async def test_rate_limited_is_retried_by_temporal_then_fails(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ApplicationError("Slow down", type="RateLimited"),
                          ApplicationError("Slow down again", type="RateLimited")])
    retry = RetrySettings(initial_interval_seconds=0.01, maximum_attempts=2)
    async with started_run(env, rec, retry, local_model_turn=False) as run:
        assert await run.handle.result() == RunResult("failed")
        types = await _event_types(run)
    # Temporal's retries: both attempts carry attempt 1 in the input, and no timer.
    assert rec.inputs("model_turn") == [ModelTurnInput(run.run_id, 1)] * 2
    assert EventType.EVENT_TYPE_TIMER_STARTED not in types
    assert rec.calls[-1] == ("finish_run", FinishInput(
        run.run_id, "failed", {"code": "rate_limit_exceeded", "message": "Slow down again"}))


async def test_cancel_reaches_the_model_call_through_its_heartbeats(
        env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("message")], release=asyncio.Event())
    # A short heartbeat timeout: heartbeats (and so cancels) are sent every 0.8 s.
    retry = RetrySettings(heartbeat_timeout_seconds=1)
    async with started_run(env, rec, retry, local_model_turn=False) as run:
        await asyncio.wait_for(rec.model_started.wait(), timeout=10)
        await run.handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await run.handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        await asyncio.wait_for(rec.model_cancelled.wait(), timeout=10)
    assert rec.calls[-1] == ("finish_run", FinishInput(run.run_id, "cancelled", None))
