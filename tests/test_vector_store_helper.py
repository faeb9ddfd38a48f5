"""`tool_resources.file_search.vector_stores`: the helper that makes a store from files.

On assistant creation, thread creation and the `thread` of create-thread-and-run, through
the Python SDK: the store is made in the caller's project, its files are ingested by the
durable IngestVectorStoreFile workflows, its id is attached, and a run's file_search finds the text.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import openai
import pytest
from openai.types.beta.assistant_create_params import (
    ToolResourcesFileSearchVectorStoreChunkingStrategyStatic,
)

from api.services.attachments import THREAD_STORE_NAME
from tests.auth_helpers import assert_error
from tests.fake_llm import FakeLLM
from tests.test_attachments import settled

pytestmark = [pytest.mark.usefixtures("worker"),
              pytest.mark.filterwarnings("ignore:The Assistants API is deprecated")]
STATIC: ToolResourcesFileSearchVectorStoreChunkingStrategyStatic = {
    "type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}}


async def _upload(client: openai.AsyncOpenAI, name: str, text: str) -> str:
    return (await client.files.create(file=(name, text.encode()), purpose="assistants")).id


def _store_of(resources: Any) -> str:
    assert resources is not None and resources.file_search is not None, resources
    [store_id] = resources.file_search.vector_store_ids or []
    return str(store_id)


async def _search_run(client: openai.AsyncOpenAI, fake_llm: FakeLLM, thread_id: str,
                      assistant_id: str, query: str) -> str:
    """Run file_search(query) on the thread; the excerpts the model read."""
    marker = uuid.uuid4().hex
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50,
        additional_messages=[{"role": "user", "content": (
            f'{marker} [[call:file_search {{"query": "{query}"}}]]')}])
    assert run.status == "completed", run.last_error
    tool_turn = fake_llm.requests_containing(marker)[-1]["messages"][-1]
    assert tool_turn["role"] == "tool"
    return str(tool_turn["content"])


async def test_assistant_helper_store_is_ingested_and_searched(
        client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    word = f"zorblax{uuid.uuid4().hex[:8]}"
    file_id = await _upload(client, "moons.txt", f"The moon {word} orbits a gas giant.")
    assistant = await client.beta.assistants.create(
        model="fake-model", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{
            "file_ids": [file_id], "chunking_strategy": STATIC,
            "metadata": {"made_by": "helper"}}]}})
    store_id = _store_of(assistant.tool_resources)
    assert (await client.beta.assistants.retrieve(assistant.id)).tool_resources == \
        assistant.tool_resources
    store = await settled(client, store_id)
    assert (store.file_counts.completed, store.file_counts.total) == (1, 1)
    assert store.metadata == {"made_by": "helper"} and store.expires_after is None
    [attached] = (await client.vector_stores.files.list(vector_store_id=store_id)).data
    assert attached.id == file_id and attached.status == "completed"
    assert attached.chunking_strategy is not None
    assert attached.chunking_strategy.model_dump() == STATIC  # the entry's own strategy
    thread = await client.beta.threads.create()
    excerpts = await _search_run(client, fake_llm, thread.id, assistant.id, word)
    assert word in excerpts and "moons.txt" in excerpts


async def test_thread_helper_store_is_ingested_and_searched(
        client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    word = f"quillfin{uuid.uuid4().hex[:8]}"
    file_id = await _upload(client, "fish.md", f"# Fish\nThe {word} swims upstream.")
    code_file = await _upload(client, "data.csv", "a,b\n1,2\n")
    assistant = await client.beta.assistants.create(model="fake-model",
                                                    tools=[{"type": "file_search"}])
    thread = await client.beta.threads.create(tool_resources={
        "file_search": {"vector_stores": [{"file_ids": [file_id]}]},
        "code_interpreter": {"file_ids": [code_file]}})
    store_id = _store_of(thread.tool_resources)
    assert thread.tool_resources is not None and thread.tool_resources.code_interpreter
    assert thread.tool_resources.code_interpreter.file_ids == [code_file]  # kept
    store = await settled(client, store_id)
    assert store.file_counts.completed == 1
    # A thread's helper store is a thread store, as on OpenAI: it expires when unused.
    assert store.name == THREAD_STORE_NAME and store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)
    excerpts = await _search_run(client, fake_llm, thread.id, assistant.id, word)
    assert word in excerpts and "fish.md" in excerpts


async def test_create_thread_and_run_helper_store_is_ingested_and_searched(
        client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    word = f"glimmerbark{uuid.uuid4().hex[:8]}"
    file_id = await _upload(client, "trees.txt", f"The {word} tree glows at night.")
    assistant = await client.beta.assistants.create(model="fake-model",
                                                    tools=[{"type": "file_search"}])
    run = await client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, poll_interval_ms=50, thread={
            "messages": [{"role": "user", "content": "[[reply:noted]]"}],
            "tool_resources": {"file_search": {"vector_stores": [{"file_ids": [file_id]}]}}})
    assert run.status == "completed", run.last_error
    thread = await client.beta.threads.retrieve(run.thread_id)
    store = await settled(client, _store_of(thread.tool_resources))
    assert (store.file_counts.completed, store.file_counts.total) == (1, 1)
    # The run made with the thread raced the ingestion; the thread's next run searches it.
    excerpts = await _search_run(client, fake_llm, thread.id, assistant.id, word)
    assert word in excerpts and "trees.txt" in excerpts


async def test_an_empty_helper_entry_makes_an_empty_store(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create(
        tool_resources={"file_search": {"vector_stores": [{}]}})
    store = await client.vector_stores.retrieve(_store_of(thread.tool_resources))
    assert store.file_counts.total == 0
    # Naming no file, create-thread-and-run still takes the path that makes the store.
    assistant = await client.beta.assistants.create(model="fake-model")
    run = await client.beta.threads.create_and_run(assistant_id=assistant.id, thread={
        "messages": [{"role": "user", "content": "[[reply:ok]]"}],
        "tool_resources": {"file_search": {"vector_stores": [{}]}}})
    made = await client.beta.threads.retrieve(run.thread_id)
    store = await client.vector_stores.retrieve(_store_of(made.tool_resources))
    assert store.file_counts.total == 0


async def _store_ids(http: httpx.AsyncClient) -> list[str]:
    page = (await http.get("/v1/vector_stores", params={"limit": 100})).json()
    return [item["id"] for item in page["data"]]


async def test_helper_errors_write_nothing(http: httpx.AsyncClient) -> None:
    file_id = (await http.post("/v1/files", data={"purpose": "assistants"},
                               files={"file": ("x.txt", b"x", "text/plain")})).json()["id"]
    store_id = (await http.post("/v1/vector_stores", json={})).json()["id"]
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()["id"]
    thread = (await http.post("/v1/threads", json={})).json()["id"]
    before = await _store_ids(http)
    both = {"file_search": {"vector_store_ids": [store_id],
                            "vector_stores": [{"file_ids": [file_id]}]}}
    two = {"file_search": {"vector_stores": [{"file_ids": [file_id]}, {}]}}
    missing = file_id[:-1] + ("0" if file_id[-1] != "0" else "1")
    gone = {"file_search": {"vector_stores": [{"file_ids": [file_id, missing]}]}}
    routes: list[tuple[str, Any]] = [
        ("/v1/assistants", lambda r: {"model": "fake-model", "tool_resources": r}),
        ("/v1/threads", lambda r: {"tool_resources": r}),
        ("/v1/threads/runs", lambda r: {"assistant_id": assistant,
                                         "thread": {"tool_resources": r}}),
    ]
    for path, make in routes:
        error = assert_error(await http.post(path, json=make(both)), 400, "invalid_value",
                             "either 'vector_store_ids' or 'vector_stores'")
        assert error["param"].endswith("tool_resources.file_search"), error
        error = assert_error(await http.post(path, json=make(two)), 400,
                             "array_above_max_length")
        assert error["param"].endswith("tool_resources.file_search.vector_stores"), error
        error = assert_error(await http.post(path, json=make(gone)), 404, None,
                             f"No file found with id '{missing}'.")
        assert error["param"].endswith("tool_resources.file_search.vector_stores[0].file_ids[1]")
    assert await _store_ids(http) == before  # no store was made by any refused request
    assert (await http.get(f"/v1/threads/{thread}/runs")).json()["data"] == []

    # Modify takes vector_store_ids as before, and not the helper (OpenAI's spec).
    for path in (f"/v1/assistants/{assistant}", f"/v1/threads/{thread}"):
        assert_error(await http.post(path, json={"tool_resources": two}), 400,
                     "unknown_parameter", "tool_resources.file_search.vector_stores")
        response = await http.post(path, json={"tool_resources": {
            "file_search": {"vector_store_ids": [store_id]}}})
        assert response.status_code == 200, response.text
        assert response.json()["tool_resources"] == {
            "file_search": {"vector_store_ids": [store_id]}}
    # Nor does a run's own tool_resources (only its `thread` is created).
    assert_error(await http.post("/v1/threads/runs", json={
        "assistant_id": assistant, "tool_resources": two}), 400, "unknown_parameter")


async def test_modify_replaces_only_the_tool_resources_it_is_given(
    client: openai.AsyncOpenAI
) -> None:
    # agency-swarm resends `{"file_search": {}}` on every start: the store must stay.
    store = await client.vector_stores.create(name="kept")
    upload = await _upload(client, "kept.txt", "kept")
    assistant = await client.beta.assistants.create(
        model="fake-model", tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    thread = await client.beta.threads.create(
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})

    for modify, target in ((client.beta.assistants.update, assistant.id),
                           (client.beta.threads.update, thread.id)):
        kept = await modify(target, tool_resources={"file_search": {}})
        assert _store_of(kept.tool_resources) == store.id
        both = await modify(
            target, tool_resources={"code_interpreter": {"file_ids": [upload]}})
        assert _store_of(both.tool_resources) == store.id
        both_resources = both.tool_resources
        assert both_resources is not None and both_resources.code_interpreter is not None
        assert both_resources.code_interpreter.file_ids == [upload]
        emptied = await modify(
            target, tool_resources={"file_search": {"vector_store_ids": []}})
        emptied_resources = emptied.tool_resources
        assert emptied_resources is not None and emptied_resources.file_search is not None
        assert emptied_resources.code_interpreter is not None
        assert emptied_resources.file_search.vector_store_ids == []
        assert emptied_resources.code_interpreter.file_ids == [upload]
