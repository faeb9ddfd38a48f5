"""A slow model is not a faulty one (docs/timeouts.md).

One token every 10 s for 40 s: longer than the suite's LLM_TIMEOUT_SECONDS (30 s), eight
times the 5 s workflow task timeout the model turn (a local activity) runs inside. The
call must finish in one attempt, its workflow task kept alive by the worker's heartbeats,
and no workflow task may time out or fail on the way."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from temporalio.api.enums.v1 import EventType

from core.settings import Settings
from tests.fake_llm import FakeLLM
from tests.faults.helpers import TERMINAL, poll_run
from tests.sdk_client import sdk_over

pytestmark = pytest.mark.usefixtures("worker")

TOKENS = 4
TOKEN_MS = 10_000


async def test_a_model_streaming_one_token_every_10_s_completes_in_one_call(
    http: httpx.AsyncClient, app: FastAPI, fake_llm: FakeLLM, settings: Settings
) -> None:
    # One base path: the behaviour is the worker's, and each run costs 40 s.
    client = sdk_over(http)
    assert settings.llm_timeout_seconds < TOKENS * TOKEN_MS / 1000  # the point of the test
    marker = f"slow-{uuid.uuid4().hex}"
    assistant = await client.beta.assistants.create(model="fake-model")
    run = await client.beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [
            {"role": "user", "content": f"{marker} [[tokens:{TOKENS}]] [[tokendelay:{TOKEN_MS}]]"}]})
    final = await poll_run(client, run.thread_id, run.id, TERMINAL, 120)
    assert final.status == "completed", final
    assert len(fake_llm.requests_containing(marker)) == 1
    messages = await client.beta.threads.messages.list(thread_id=run.thread_id)
    assert messages.data[0].content[0].text.value == "w1 w2 w3 w4"  # type: ignore[union-attr]
    handle = app.state.temporal.get_workflow_handle(run.id)
    kinds = [event.event_type async for event in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT not in kinds
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
    # The turn's task was heartbeated (a completed task per beat), not one long task.
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) >= TOKENS
