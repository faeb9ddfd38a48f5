"""Real run histories, replayed through Temporal's sandbox and without it.

The worker runs workflows unsandboxed by default (WORKFLOW_SANDBOX, see worker.py): the
sandbox re-creates module state for every run, a sixth of the worker's CPU per run. This
test is what keeps that safe. It records the histories of runs that take every path of the
workflows (text, a retried model turn, function round trip by update and by signal, cancel,
failure, file_search with ingestion) on the real server, then replays each one:
- through the sandbox with its default restrictions: workflow code that reads the clock,
  randomness, the environment or does I/O raises here, so it cannot reach main unnoticed;
- unsandboxed, as the worker runs them: a replay that diverges from its history fails.

tests/histories/ holds the same kinds of histories recorded by earlier versions, one
directory each (RECORDED below; `bash scripts/record_histories.sh NAME` writes one): runs in flight during an upgrade, parked ones above all,
must replay through today's code, so a change to the workflows that would strand them (a
command added, removed or reordered without a version switch: `workflow.patched` or, as
for the local-activity turn, a RunInput field) fails here. Record a new directory when the
workflows' commands change.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai.types.beta import FunctionToolParam
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from tests.fake_llm import FakeLLM
from tests.sdk_client import sdk_over
from worker import workflow_runner
from workflows.ingest import IngestFileWorkflow
from workflows.run import AssistantRunWorkflow
from workflows.types import SubmitToolOutputs, ToolOutput

pytestmark = pytest.mark.usefixtures("worker")

HISTORIES = Path(__file__).parent / "histories"
WEATHER: FunctionToolParam = {"type": "function", "function": {
    "name": "getCurrentWeather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}
CALL = '[[call:getCurrentWeather {"location": "Paris"}]]'


@pytest.fixture
async def sdk(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return sdk_over(http)


async def _run(sdk: openai.AsyncOpenAI, assistant: str, content: str) -> tuple[str, str]:
    thread = await sdk.beta.threads.create(messages=[{"role": "user", "content": content}])
    run = await sdk.beta.threads.runs.create_and_poll(thread_id=thread.id,
                                                      assistant_id=assistant,
                                                      poll_interval_ms=50)
    return thread.id, run.id


# The name of each history, in the order _histories returns them.
NAMES = ["text", "retried", "update", "signal", "cancelled", "failed", "file_search",
         "ingest", "parked"]


async def _histories(sdk: openai.AsyncOpenAI, temporal: Client) -> list[WorkflowHistory]:
    marker = uuid.uuid4().hex
    assistant = (await sdk.beta.assistants.create(model="fake-model", tools=[WEATHER])).id
    run_ids: list[str] = []

    _, text = await _run(sdk, assistant, f"{marker} [[reply:Hello.]]")
    run_ids.append(text)

    # The model call fails once (a 503): the workflow retries the turn after a timer.
    _, retried = await _run(sdk, assistant, f"{marker} [[fail:503x1]] [[reply:Hello.]]")
    run_ids.append(retried)

    # Function round trip, outputs by update (the API's path).
    thread, by_update = await _run(sdk, assistant, f"{marker} {CALL}")
    run = await sdk.beta.threads.runs.retrieve(by_update, thread_id=thread)
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    await sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=by_update, thread_id=thread, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}])
    run_ids.append(by_update)

    # Outputs by signal (operators), a bad signal first: it is logged and ignored.
    thread, by_signal = await _run(sdk, assistant, f"{marker} {CALL}")
    run = await sdk.beta.threads.runs.retrieve(by_signal, thread_id=thread)
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    handle = temporal.get_workflow_handle_for(AssistantRunWorkflow.run, by_signal)
    await handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal,
                        SubmitToolOutputs([ToolOutput("call_wrong", "x")]))
    await handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal,
                        SubmitToolOutputs([ToolOutput(call.id, "sunny")]))
    await handle.result()
    run_ids.append(by_signal)

    # Cancelled while waiting for outputs.
    thread, cancelled = await _run(sdk, assistant, f"{marker} {CALL}")
    await sdk.beta.threads.runs.cancel(cancelled, thread_id=thread)
    run_ids.append(cancelled)

    # Failed: the model refuses the request (not retryable).
    _, failed = await _run(sdk, assistant, f"{marker} [[fail:400]]")
    run_ids.append(failed)

    # file_search: a vector store's ingestion workflow, then a server-side search.
    upload = await sdk.files.create(file=("geo.txt", io.BytesIO(b"Paris is in France.")),
                                    purpose="assistants")
    store = await sdk.vector_stores.create(name="docs")
    store_file = await sdk.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=upload.id, poll_interval_ms=50)
    searcher = await sdk.beta.assistants.create(
        model="fake-model", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    _, searched = await _run(sdk, searcher.id,
                             f'{marker} [[call:file_search {{"query": "Paris"}}]]')
    run_ids.append(searched)

    assert store_file.status == "completed", store_file.last_error
    # Ingestion workflow ids: ingest-{store}-{file}-{attempt} (api/services/ingestion.py).
    ingestions = [w.id async for w in temporal.list_workflows("WorkflowType = 'IngestVectorStoreFile'")
                  if w.id.startswith(f"ingest-{store.id}-{upload.id}-")]
    assert ingestions, "the ingestion workflow is not visible"
    closed = [await _closed_history(temporal, workflow_id)
              for workflow_id in run_ids + ingestions[:1]]
    return [*closed, await _parked_history(sdk, temporal, assistant, marker)]


async def _parked_history(sdk: openai.AsyncOpenAI, temporal: Client, assistant: str,
                          marker: str) -> WorkflowHistory:
    """An open run waiting for tool outputs: what a deploy finds parked, and must resume."""
    thread, parked = await _run(sdk, assistant, f"{marker} {CALL}")
    history = await temporal.get_workflow_handle(parked).fetch_history()
    await sdk.beta.threads.runs.cancel(parked, thread_id=thread)
    return history


async def _closed_history(temporal: Client, workflow_id: str) -> WorkflowHistory:
    """The full history, once the workflow has closed (a run's status is in Postgres a
    moment before its workflow completes)."""
    handle = temporal.get_workflow_handle(workflow_id)
    for _ in range(200):
        if (await handle.describe()).close_time is not None:
            return await handle.fetch_history()
        await asyncio.sleep(0.05)
    raise AssertionError(f"workflow {workflow_id} did not close")


async def _replay_in_the_sandbox_and_without_it(histories: list[WorkflowHistory]) -> None:
    for sandboxed in (True, False):
        replayer = Replayer(workflows=[AssistantRunWorkflow, IngestFileWorkflow],
                            workflow_runner=workflow_runner(sandboxed))
        for history in histories:
            # Raises on a non-deterministic replay or a sandbox violation.
            await replayer.replay_workflow(history)


async def test_run_histories_replay_in_the_sandbox_and_without_it(
        sdk: openai.AsyncOpenAI, app: FastAPI, fake_llm: FakeLLM) -> None:
    temporal: Client = app.state.temporal
    histories = await _histories(sdk, temporal)
    endings = {name: h.events[-1].event_type for name, h in zip(NAMES, histories, strict=True)}
    endings.pop("parked")  # still open
    # A failed run closes Failed, a cancelled one Canceled (RunInput.close_as_failed).
    assert endings.pop("failed") == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    assert endings.pop("cancelled") == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    assert set(endings.values()) == {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED}, endings
    # A text run: the model turn is one local-activity marker, and nothing else is
    # recorded for it (no patch marker, no search-attribute upsert).
    text = [e.event_type for e in histories[0].events]
    assert text.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 1, text
    assert EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES not in text
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in text
    retried = histories[1]  # the backoff between its two attempts is a timer
    assert EventType.EVENT_TYPE_TIMER_FIRED in {e.event_type for e in retried.events}

    assert histories[-1].events[-1].event_type != (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)  # parked: still open
    await _replay_in_the_sandbox_and_without_it(histories)
    if target := os.environ.get("RECORD_HISTORIES"):  # scripts/record_histories.sh
        directory = HISTORIES / target
        directory.mkdir(parents=True, exist_ok=False)
        for name, history in zip(NAMES, histories, strict=True):
            (directory / f"{name}.json").write_text(history.to_json())


# What each version recorded (the directories in tests/histories/).
RECORDED = {
    # Commit 855529a: the model turn as a regular activity.
    "regular_activity_turn": ["cancelled", "failed", "file_search", "ingest", "signal",
                              "text", "update"],
    # 2026-11-27 (stop 15): the model turn as a local activity, retried by the workflow.
    "local_activity_turn": ["cancelled", "failed", "file_search", "ingest", "retried",
                            "signal", "text", "update"],
    # 2026-12-07 (stop 25): waits for its handlers before returning, caps turns; with a
    # parked (open) run. Recorded by scripts/record_histories.sh.
    "handlers_finished": sorted(NAMES),
    # 2026-12-08 (issue 24): a failed run's workflow closes Failed (RunInput.close_as_failed).
    "close_as_failed": sorted(NAMES),
}


@pytest.mark.parametrize("version", sorted(RECORDED))
async def test_histories_recorded_by_an_earlier_version_still_replay(version: str) -> None:
    recorded = sorted((HISTORIES / version).glob("*.json"))
    assert [path.stem for path in recorded] == RECORDED[version]
    histories = [WorkflowHistory.from_json(path.stem, path.read_text()) for path in recorded]
    await _replay_in_the_sandbox_and_without_it(histories)
