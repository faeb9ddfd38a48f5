"""AssistantRunWorkflow on Temporal's time-skipping test server, with mocked activities:
how a run ends other than by answering - expiry, cancel, and model turn failures.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from tests.workflow_doubles import (  # time_skipping_env: the `env` fixture
    RUN_SECONDS,
    Recorder,
    run_end,
    started_run,
    time_skipping_env,  # noqa: F401
    wait_for_status,
)
from workflows.run import MAX_TURNS
from workflows.types import (
    FinishInput,
    ModelTurnInput,
    ModelTurnResult,
    RetrySettings,
    RunResult,
)


# --- 4. expiry while waiting for outputs ---------------------------------------------
async def test_run_expires_without_outputs(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"])])
    async with started_run(env, rec) as run:
        wall = time.monotonic()
        # result() lets the test server skip time up to the run's expires_at.
        assert await run_end(run.handle) == ("expired", None)
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


# --- 7. model turn failures ----------------------------------------------------------
async def test_invalid_prompt_fails_without_retry(env: WorkflowEnvironment) -> None:
    # Not flagged non_retryable by the activity: the workflow's policy must classify it.
    error = ApplicationError("Prompt is too long", type="InvalidPrompt")
    rec = Recorder(turns=[error, ModelTurnResult("message")])
    retry = RetrySettings(initial_interval_seconds=0.01, maximum_attempts=5)
    async with started_run(env, rec, retry) as run:
        assert await run_end(run.handle) == ("failed", "invalid_prompt")
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
        assert await run_end(run.handle) == ("failed", "rate_limit_exceeded")
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("model_turn", ModelTurnInput(run.run_id, 1, attempt=2)),
        ("finish_run", FinishInput(run.run_id, "failed",
                                   {"code": "rate_limit_exceeded",
                                    "message": "Slow down again"})),
    ]


async def test_cancel_during_model_turn(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("message")], release=asyncio.Event())
    async with started_run(env, rec) as run:
        await asyncio.wait_for(rec.model_started.wait(), timeout=10)
        await run.handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await run.handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        # The cancel reached the model call (a local activity: at its workflow task's
        # next heartbeat).
        await asyncio.wait_for(rec.model_cancelled.wait(), timeout=10)
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("finish_run", FinishInput(run.run_id, "cancelled", None)),
    ]


async def test_retries_cut_short_by_expiry_expire_the_run(env: WorkflowEnvironment) -> None:
    """Rate limited until the deadline: the workflow stops retrying when the next attempt
    would start after expires_at (Temporal alone would go on retrying a local activity
    past its schedule_to_close_timeout). The run expired; it did not fail."""
    rec = Recorder(turns=[ApplicationError("Slow down", type="RateLimited")] * 20)
    retry = RetrySettings(initial_interval_seconds=0.5, maximum_attempts=0)  # unlimited
    # Short: the test server skips the backoff timers, but not the workflow tasks'
    # real time between them.
    async with started_run(env, rec, retry, run_seconds=2) as run:
        assert await run_end(run.handle) == ("expired", None)
    attempts = [turn.attempt for turn in rec.inputs("model_turn")]
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 2
    assert rec.calls[-1] == ("finish_run", FinishInput(run.run_id, "expired", None))
    assert rec.names()[:-1] == ["model_turn"] * (len(rec.calls) - 1)


@pytest.mark.parametrize("attempts", [6, 1])
async def test_model_call_still_running_at_the_deadline_expires_the_run(
        env: WorkflowEnvironment, attempts: int) -> None:
    """A model call that never ends is stopped when the run expires, not after the model
    call timeout (120 s here), and the run expires (it does not fail, even on its last
    attempt) without a retry."""
    rec = Recorder(turns=[ModelTurnResult("message")], release=asyncio.Event())
    wall = time.monotonic()
    retry = RetrySettings(maximum_attempts=attempts)
    async with started_run(env, rec, retry, run_seconds=2) as run:
        assert await run_end(run.handle) == ("expired", None)
        await asyncio.wait_for(rec.model_cancelled.wait(), timeout=10)
    assert time.monotonic() - wall < 30
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("finish_run", FinishInput(run.run_id, "expired", None)),
    ]


async def test_retry_after_from_the_provider_sets_the_backoff(
        env: WorkflowEnvironment) -> None:
    """A RateLimited error that says when to come back is retried after exactly that long
    (a durable timer), not after the policy's backoff."""
    slow_down = ApplicationError("Slow down", type="RateLimited",
                                 next_retry_delay=timedelta(seconds=7))
    rec = Recorder(turns=[slow_down, ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        assert await run.handle.result() == RunResult("completed")
        timers = [event.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
                  async for event in run.handle.fetch_history_events()
                  if event.HasField("timer_started_event_attributes")]
    assert timers == [7]
    assert rec.inputs("model_turn") == [ModelTurnInput(run.run_id, 1),
                                        ModelTurnInput(run.run_id, 1, attempt=2)]


# --- a model that never stops calling tools ------------------------------------------
async def test_a_run_that_keeps_calling_tools_fails_after_max_turns(
    env: WorkflowEnvironment
) -> None:
    # Server-side calls only (nothing for the client to answer): the loop never waits.
    rec = Recorder(turns=[ModelTurnResult("tool_calls") for _ in range(MAX_TURNS + 1)])
    async with started_run(env, rec) as run:
        assert await run_end(run.handle) == ("failed", "server_error")
    assert rec.names().count("model_turn") == MAX_TURNS
    finish = rec.inputs("finish_run")
    assert len(finish) == 1 and finish[0].status == "failed"
    assert finish[0].last_error["code"] == "server_error"
    assert f"{MAX_TURNS} model turns" in finish[0].last_error["message"]
    events = [event async for event in run.handle.fetch_history_events()]
    assert len(events) < 12 * MAX_TURNS  # the bound MAX_TURNS's comment states
