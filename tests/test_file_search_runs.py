"""file_search as a run tool: searched server-side, recorded as a step, cited in the answer."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from typing import Any, Final

import openai
import pytest
from openai.types.beta.threads.runs import FileSearchToolCall, RunStep, ToolCallsStepDetails
from openai.types.beta.threads.runs.file_search_tool_call import FileSearchResult
from sqlalchemy import text

from core.db import create_engine
from core.settings import Settings
from tests.auth_helpers import bearer, new_key, serve
from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.usefixtures("worker")

# Final: typed as its Literal, which `include=` expects.
INCLUDE_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"


def _first_result(step: RunStep) -> FileSearchResult:
    """The first result of the step's first (file_search) tool call."""
    details = step.step_details
    assert isinstance(details, ToolCallsStepDetails), details
    call = details.tool_calls[0]
    assert isinstance(call, FileSearchToolCall) and call.file_search.results is not None, call
    return call.file_search.results[0]


async def _store_with(client: openai.AsyncOpenAI, name: str, text: str) -> tuple[str, str]:
    upload = await client.files.create(file=(name, io.BytesIO(text.encode())),
                                       purpose="assistants")
    store = await client.vector_stores.create(name="docs")
    await client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=upload.id,
                                                     poll_interval_ms=50)
    return store.id, upload.id


async def test_file_search_runs_server_side_and_cites_the_file(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    marker = uuid.uuid4().hex
    store_id, file_id = await _store_with(
        client, "geo.txt", "The capital of France is Paris. Bananas are yellow.")
    assistant = await client.beta.assistants.create(
        model="fake-model", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}})
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": (
        f'{marker} [[call:file_search {{"query": "capital of France"}}]]')}])
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error  # never requires_action: no client tools

    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id,
                                                      order="asc")
    assert [(s.type, s.status) for s in steps.data] == [
        ("tool_calls", "completed"), ("message_creation", "completed")]
    call = steps.data[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert call.type == "file_search"
    results = call.file_search.results  # type: ignore[union-attr]
    assert results and results[0].file_id == file_id and results[0].file_name == "geo.txt"
    assert results[0].content is None  # only with include[]

    # The model read the labelled excerpt as the tool's output ...
    second = fake_llm.requests_containing(marker)[-1]["messages"]
    assert second[-1]["role"] == "tool" and "【1:0†geo.txt】" in second[-1]["content"]
    assert "Paris" in second[-1]["content"]
    # ... and its answer, quoting the label, carries a file_citation annotation.
    messages = await client.beta.threads.messages.list(thread_id=thread.id)
    text = messages.data[0].content[0].text  # type: ignore[union-attr]
    citation = text.annotations[0]
    assert citation.type == "file_citation"
    assert citation.file_citation.file_id == file_id  # type: ignore[union-attr]
    assert text.value[citation.start_index:citation.end_index] == citation.text


async def test_include_returns_result_content(client: openai.AsyncOpenAI) -> None:
    store_id, _ = await _store_with(client, "notes.md", "Temporal workflows are durable.")
    assistant = await client.beta.assistants.create(
        model="fake-model", tools=[{"type": "file_search"}])
    thread = await client.beta.threads.create(
        messages=[{"role": "user",
                   "content": '[[call:file_search {"query": "durable workflows"}]]'}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}})
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    steps = await client.beta.threads.runs.steps.list(
        run_id=run.id, thread_id=thread.id, order="asc", include=[INCLUDE_CONTENT])
    result = _first_result(steps.data[0])
    assert result.content is not None
    assert "durable" in result.content[0].text  # type: ignore[operator]
    single = await client.beta.threads.runs.steps.retrieve(
        step_id=steps.data[0].id, run_id=run.id, thread_id=thread.id, include=[INCLUDE_CONTENT])
    assert _first_result(single).content


async def test_file_search_and_a_function_in_one_turn(client: openai.AsyncOpenAI) -> None:
    store_id, _ = await _store_with(client, "a.txt", "Alpha beta gamma.")
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}
    assistant = await client.beta.assistants.create(
        model="fake-model", tools=[{"type": "file_search"}, lookup],  # type: ignore[list-item]
        tool_resources={"file_search": {"vector_store_ids": [store_id]}})
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": (
        '[[call:file_search {"query": "alpha"}]] [[call:lookup {"q": "x"}]]')}])
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert [c.function.name for c in calls] == ["lookup"]  # file_search is not the client's
    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "X"}])
    assert done.status == "completed"
    reply = (await client.beta.threads.messages.list(thread_id=thread.id)).data[0]
    assert "Alpha beta gamma" in reply.content[0].text.value  # type: ignore[union-attr]
    assert "X" in reply.content[0].text.value  # type: ignore[union-attr]


async def _set_tool_resources(settings: Settings, assistant_id: str,
                              resources: dict[str, Any]) -> None:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE assistants SET tool_resources = CAST(:r AS jsonb) "
                                    "WHERE id = :id"), {"r": json.dumps(resources),
                                                        "id": assistant_id})
    finally:
        await engine.dispose()


async def test_a_run_never_searches_another_projects_store(
    settings: Settings, fake_llm: FakeLLM
) -> None:
    """Project B names project A's store in tool_resources: the run searches nothing."""
    _, key_a = await new_key(settings, "fs-project-a")
    _, key_b = await new_key(settings, "fs-project-b")
    async with serve(settings, auth_mode="required") as http:
        upload = await http.post("/v1/files", headers=bearer(key_a),
                                 files={"file": ("secret.txt", b"The launch code is 0000.")},
                                 data={"purpose": "assistants"})
        store = (await http.post("/v1/vector_stores", headers=bearer(key_a),
                                 json={"file_ids": [upload.json()["id"]]})).json()
        for _ in range(200):
            current = (await http.get(f"/v1/vector_stores/{store['id']}",
                                      headers=bearer(key_a))).json()
            if current["file_counts"]["completed"]:
                break
            await asyncio.sleep(0.05)
        marker = uuid.uuid4().hex
        assistant = (await http.post("/v1/assistants", headers=bearer(key_b), json={
            "model": "fake-model", "tools": [{"type": "file_search"}]})).json()
        # The API refuses to store A's id for B (tests/test_references.py); a row written
        # before that check, or by hand, still must not reach A's store at run time.
        await _set_tool_resources(settings, assistant["id"],
                                  {"file_search": {"vector_store_ids": [store["id"]]}})
        run = (await http.post("/v1/threads/runs", headers=bearer(key_b), json={
            "assistant_id": assistant["id"], "thread": {"messages": [{"role": "user", "content": (
                f'{marker} [[call:file_search {{"query": "launch code"}}]]')}]}})).json()
        for _ in range(200):
            run = (await http.get(f"/v1/threads/{run['thread_id']}/runs/{run['id']}",
                                  headers=bearer(key_b))).json()
            if run["status"] not in ("queued", "in_progress"):
                break
            await asyncio.sleep(0.05)
    assert run["status"] == "completed"
    tool_turn = fake_llm.requests_containing(marker)[-1]["messages"][-1]
    assert tool_turn["role"] == "tool" and "0000" not in tool_turn["content"]
    assert tool_turn["content"] == "No results."
