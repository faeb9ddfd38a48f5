"""How a run's workflow closes, so the Temporal UI tells runs apart: a failed or expired run
closes Failed, a cancelled one Canceled, the others Completed; only after the run's row
was written (finish_run). Runs started without `RunInput.close_as_failed` (before it
existed) keep closing Completed, their status in the result, as their histories recorded.
Time-skipping test server, mocked activities (tests/workflow_doubles.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.workflow_doubles import (  # time_skipping_env: the `env` fixture
    Recorder,
    Run,
    run_end,
    started_run,
    time_skipping_env,  # noqa: F401
    wait_for_status,
)
from workflows.types import FinishInput, ModelTurnResult, RetrySettings

PROMPT_TOO_LONG = {"code": "invalid_prompt", "message": "Prompt is too long"}
# (how the model turn goes, the run's end, its last_error code, its workflow's close status)
End = tuple[list[ModelTurnResult | Exception], tuple[str, str | None], WorkflowExecutionStatus]
ENDS: dict[str, End] = {
    "completed": ([ModelTurnResult("message")], ("completed", None),
                  WorkflowExecutionStatus.COMPLETED),
    "incomplete": ([ModelTurnResult("incomplete")], ("incomplete", None),
                   WorkflowExecutionStatus.COMPLETED),
    "failed": ([ApplicationError("Prompt is too long", type="InvalidPrompt")],
               ("failed", "invalid_prompt"), WorkflowExecutionStatus.FAILED),
    # Tool calls nobody answers: the run expires waiting for outputs.
    "expired": ([ModelTurnResult("tool_calls", ["call_a"])], ("expired", None),
                WorkflowExecutionStatus.FAILED),
    "cancelled": ([ModelTurnResult("tool_calls", ["call_a"])], ("cancelled", None),
                  WorkflowExecutionStatus.CANCELED),
}
FAST_RETRY = RetrySettings(initial_interval_seconds=0.01)


async def _end(run: Run, end: str) -> tuple[str, str | None]:
    if end == "cancelled":
        await wait_for_status(run.handle, "requires_action")
        await run.handle.cancel()
    return await run_end(run.handle)


async def _events(run: Run) -> list[Any]:
    return [event async for event in run.handle.fetch_history_events()]


@pytest.mark.parametrize("end", sorted(ENDS))
async def test_each_end_closes_the_workflow_as_such(env: WorkflowEnvironment, end: str) -> None:
    turns, expected, close_status = ENDS[end]
    rec = Recorder(turns=list(turns))
    async with started_run(env, rec, FAST_RETRY) as run:
        assert await _end(run, end) == expected
        assert (await run.handle.describe()).status == close_status
        events = await _events(run)
    finish = rec.inputs("finish_run")
    if end in ("completed", "incomplete"):
        assert finish == []  # model_turn wrote the end itself
        return
    # Written once, before the workflow closed: the row says what the close says.
    assert finish == [FinishInput(run.run_id, end,  # type: ignore[arg-type]
                                  PROMPT_TOO_LONG if end == "failed" else None)]
    assert rec.calls[-1][0] == "finish_run"
    kinds = [event.event_type for event in events]
    marker = max(i for i, kind in enumerate(kinds)
                 if kind == EventType.EVENT_TYPE_MARKER_RECORDED)  # finish_run's
    assert marker < len(kinds) - 1
    if close_status == WorkflowExecutionStatus.FAILED:
        closed = events[-1].workflow_execution_failed_event_attributes.failure
        assert closed.application_failure_info.non_retryable
        assert closed.application_failure_info.type == (expected[1] or "expired")
        assert closed.message == ("Prompt is too long" if end == "failed" else
                                  "The run expired: it had not ended by its expires_at.")


@pytest.mark.parametrize("end", ["failed", "expired"])
async def test_runs_started_without_the_field_still_complete(
        env: WorkflowEnvironment, end: str) -> None:
    """Old-style input (no `close_as_failed`): the workflow completes with the status as
    its result, the command its recorded histories end with."""
    turns, _, _ = ENDS[end]
    rec = Recorder(turns=list(turns))
    async with started_run(env, rec, FAST_RETRY, close_as_failed=False) as run:
        assert await run_end(run.handle) == (end, None)
        assert (await run.handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        events = await _events(run)
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    assert [i.status for i in rec.inputs("finish_run")] == [end]
