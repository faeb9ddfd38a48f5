"""A run's Temporal workflow, from the API's side: start, cancel, feed tool outputs (its
update) and terminate (abandon); called by the run service, api/services/runs.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Protocol

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, invalid
from core.settings import Settings
from workflows.run import AssistantRunWorkflow
from workflows.types import RetrySettings, RunInput, SubmitToolOutputs, ToolOutput

THREAD_ID = SearchAttributeKey.for_keyword("ThreadId")
ASSISTANT_ID = SearchAttributeKey.for_keyword("AssistantId")


def _retry_settings(settings: Settings) -> RetrySettings:
    return RetrySettings(
        initial_interval_seconds=settings.llm_retry_initial_seconds,
        maximum_attempts=settings.llm_retry_max_attempts,
        # A whole model call may last as long as the run may: a slow model streaming a
        # long answer is not a fault. A *silent* one is: the provider's HTTP client gives
        # up after LLM_TIMEOUT_SECONDS without a byte (worker.py), and the call is retried.
        model_call_timeout_seconds=float(settings.run_expiry_seconds),
    )


class RunKeys(Protocol):
    """What starting a run's workflow needs: a RunRow, or api/rows.py's plain row."""

    id: str
    thread_id: str
    assistant_id: str
    expires_at: int | None


async def start_run(client: Client, settings: Settings, run: RunKeys) -> None:
    assert run.expires_at is not None
    search_attributes = None
    if settings.temporal_search_attributes:
        search_attributes = TypedSearchAttributes([
            SearchAttributePair(THREAD_ID, run.thread_id),
            SearchAttributePair(ASSISTANT_ID, run.assistant_id),
        ])
    await client.start_workflow(
        AssistantRunWorkflow.run,
        RunInput(run.id, run.thread_id, run.assistant_id, run.expires_at,
                 _retry_settings(settings), local_model_turn=True, close_as_failed=True),
        id=run.id,
        task_queue=settings.temporal_task_queue,
        task_timeout=timedelta(seconds=settings.run_task_timeout_seconds),
        memo={"thread_id": run.thread_id, "assistant_id": run.assistant_id},
        search_attributes=search_attributes,
        static_summary=f"Run {run.id} of assistant {run.assistant_id} on {run.thread_id}",
    )


async def cancel_run(client: Client, run_id: str) -> None:
    # An RPCError means the workflow already closed: the run ended on its own.
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(run_id).cancel()


async def abandon_run(client: Client, run_id: str) -> None:
    """End a workflow whose run could not be written (best effort: otherwise its first
    turn gives up waiting for the row)."""
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(run_id).terminate(reason="the run could not be written")


# Temporal refuses updates while a workflow task is being retried (its attempt > 1: a
# task that timed out on a starved worker, say) until one completes. Transient: the
# API tries again for this long before answering 409.
TASK_RETRY_PATIENCE_SECONDS = 15.0


def _task_retrying(error: RPCError) -> bool:
    return (error.status == RPCStatusCode.FAILED_PRECONDITION
            and "Workflow Task in failed state" in error.message)


async def submit_tool_outputs(client: Client, run_id: str, outputs: list[ToolOutput]) -> None:
    """Deliver outputs through the workflow's update; its validator's refusal is a 400."""
    handle = client.get_workflow_handle_for(AssistantRunWorkflow.run, run_id)
    deadline = time.monotonic() + TASK_RETRY_PATIENCE_SECONDS
    delay = 0.1
    while True:
        try:
            # The update returns the workflow's state; the API answers from Postgres.
            _state = await handle.execute_update(AssistantRunWorkflow.submit_tool_outputs,
                                                 SubmitToolOutputs(outputs))
            return
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise invalid(getattr(cause, "message", None) or str(cause),
                          "tool_outputs") from None
        except RPCError as error:
            if _task_retrying(error) and time.monotonic() + delay < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            raise ApiError(409, f"Run {run_id} no longer accepts tool outputs "
                                f"({error.message}).", code="run_not_active") from None
