"""AssistantRunWorkflow on Temporal's time-skipping test server, with mocked activities:
how a run ends other than by answering - expiry, cancel, and model turn failures.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from tests.workflow_doubles import (  # time_skipping_env: the `env` fixture
    RUN_SECONDS,
    Recorder,
    started_run,
    time_skipping_env,  # noqa: F401
    wait_for_status,
)
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
