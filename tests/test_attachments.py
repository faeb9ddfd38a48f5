"""Message attachments with file_search join the thread's vector store, as on OpenAI."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai.types import VectorStore

from api.services.attachments import THREAD_STORE_NAME
from core.settings import Settings
from tests.auth_helpers import assert_error, bearer, new_key, serve

pytestmark = [pytest.mark.usefixtures("worker"),
              pytest.mark.filterwarnings("ignore:The Assistants API is deprecated")]
FILE_SEARCH: list[Any] = [{"type": "file_search"}]  # Any: the SDK wants its TypedDicts


async def upload(client: openai.AsyncOpenAI, name: str, text: str) -> str:
    return (await client.files.create(file=(name, text.encode()), purpose="assistants")).id


async def thread_store_id(client: openai.AsyncOpenAI, thread_id: str) -> str:
    thread = await client.beta.threads.retrieve(thread_id)
    assert thread.tool_resources is not None and thread.tool_resources.file_search is not None
    [store_id] = thread.tool_resources.file_search.vector_store_ids or []
    return store_id


async def settled(client: openai.AsyncOpenAI, store_id: str, within: float = 30) -> VectorStore:
    """The store once none of its files is in progress."""
    deadline = time.monotonic() + within
    store = await client.vector_stores.retrieve(store_id)
    while store.file_counts.in_progress and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        store = await client.vector_stores.retrieve(store_id)
    return store


async def test_attachments_fill_one_thread_store_that_runs_search(
        client: openai.AsyncOpenAI) -> None:
    marker = uuid.uuid4().hex
    first = await upload(client, "axolotl.txt",
                         f"Axolotls regrow entire limbs within weeks. {marker}")
    thread = await client.beta.threads.create(messages=[{
        "role": "user", "content": "Read this.",
        "attachments": [{"file_id": first, "tools": FILE_SEARCH}]}])
    # The thread got a store, as OpenAI does: named, expiring 7 days after last use.
    assert thread.tool_resources is not None and thread.tool_resources.file_search is not None
    [store_id] = thread.tool_resources.file_search.vector_store_ids or []
    store = await settled(client, store_id)
    assert store.name == THREAD_STORE_NAME
    assert store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)
    assert store.file_counts.completed == 1 and store.status == "completed"
    vs_file = await client.vector_stores.files.retrieve(first, vector_store_id=store_id)
    assert vs_file.status == "completed"

    # A second attachment on the same thread goes into the same store.
    second = await upload(client, "lighthouse.md",
                          "# Lighthouses\n\nA Fresnel lens concentrates the lamp's beam.")
    message = await client.beta.threads.messages.create(
        thread.id, role="user", content="And this.",
        attachments=[{"file_id": second, "tools": FILE_SEARCH}])
    assert [a.file_id for a in message.attachments or []] == [second]
    assert await thread_store_id(client, thread.id) == store_id
    store = await settled(client, store_id)
    assert (store.file_counts.completed, store.file_counts.total) == (2, 2)
    # Attaching a file the store already has does not ingest it again.
    await client.beta.threads.messages.create(
        thread.id, role="user", content="Again.",
        attachments=[{"file_id": first, "tools": FILE_SEARCH}])
    again = await client.vector_stores.files.retrieve(first, vector_store_id=store_id)
    assert (again.status, again.created_at) == ("completed", vs_file.created_at)

    # A run with the file_search tool searches the thread's store.
    assistant = await client.beta.assistants.create(model="fake-model", tools=FILE_SEARCH)
    await client.beta.threads.messages.create(
        thread.id, role="user",
        content='[[call:file_search {"query": "how do axolotls regrow limbs"}]]')
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    reply = (await client.beta.threads.messages.list(thread_id=thread.id)).data[0]
    text = reply.content[0].text.value  # type: ignore[union-attr]
    assert text.startswith("Tool results:") and marker in text and "Axolotls regrow" in text


async def test_additional_messages_and_create_thread_and_run(
        client: openai.AsyncOpenAI) -> None:
    assistant = await client.beta.assistants.create(model="fake-model", tools=FILE_SEARCH)
    # createThreadAndRun: the new thread's message attachments make its store.
    first = await upload(client, "tea.txt", "Oolong tea is partially oxidised.")
    run = await client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, poll_interval_ms=50,
        thread={"messages": [{"role": "user", "content": "[[reply:ok]]",
                              "attachments": [{"file_id": first, "tools": FILE_SEARCH}]}]},
    )
    assert run.status == "completed"
    store_id = await thread_store_id(client, run.thread_id)
    assert (await settled(client, store_id)).file_counts.completed == 1

    # A run's additional_messages: the file joins the same store, and that run can find it
    # once ingested (here it is waited for; OpenAI's runs wait up to 60 s on thread stores).
    second = await upload(client, "kiln.txt", "A kiln fires stoneware clay at 1200 degrees.")
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=run.thread_id, assistant_id=assistant.id, poll_interval_ms=50,
        additional_messages=[{"role": "user", "content": "[[reply:noted]]",
                              "attachments": [{"file_id": second, "tools": FILE_SEARCH}]}])
    assert run.status == "completed"
    assert await thread_store_id(client, run.thread_id) == store_id
    store = await settled(client, store_id)
    assert (store.file_counts.completed, store.file_counts.total) == (2, 2)
    found = [r.file_id async for r in client.vector_stores.search(store_id, query="kiln")]
    assert found[0] == second


async def test_existing_thread_store_is_used_and_other_tools_are_ignored(
        client: openai.AsyncOpenAI) -> None:
    own = await client.vector_stores.create(name="mine")
    thread = await client.beta.threads.create(
        tool_resources={"file_search": {"vector_store_ids": [own.id]},
                        "code_interpreter": {"file_ids": []}})
    code_only = await upload(client, "data.csv", "a,b\n1,2\n")
    await client.beta.threads.messages.create(
        thread.id, role="user", content="code",
        attachments=[{"file_id": code_only, "tools": [{"type": "code_interpreter"}]}])
    assert (await client.vector_stores.retrieve(own.id)).file_counts.total == 0
    doc = await upload(client, "doc.txt", "Quokkas live on Rottnest Island.")
    await client.beta.threads.messages.create(
        thread.id, role="user", content="doc",
        attachments=[{"file_id": doc, "tools": [{"type": "code_interpreter"},
                                                {"type": "file_search"}]}])
    assert await thread_store_id(client, thread.id) == own.id
    resources = (await client.beta.threads.retrieve(thread.id)).tool_resources
    assert resources is not None and resources.code_interpreter is not None  # kept
    assert (await settled(client, own.id)).file_counts.completed == 1

    # A thread naming a store that no longer exists gets a new one instead.
    await client.vector_stores.delete(own.id)
    await client.beta.threads.messages.create(
        thread.id, role="user", content="doc again",
        attachments=[{"file_id": doc, "tools": FILE_SEARCH}])
    replacement = await thread_store_id(client, thread.id)
    assert replacement != own.id
    assert (await settled(client, replacement)).file_counts.completed == 1


async def test_unknown_or_foreign_files_are_404_and_write_nothing(
        client: openai.AsyncOpenAI, http: httpx.AsyncClient, settings: Settings) -> None:
    thread = await client.beta.threads.create()
    bad = {"role": "user", "content": "x",
           "attachments": [{"file_id": "file-missing", "tools": FILE_SEARCH}]}
    response = await http.post(f"/v1/threads/{thread.id}/messages", json=bad)
    assert_error(response, 404, contains="file-missing")
    assert (await client.beta.threads.messages.list(thread.id)).data == []
    resources = (await client.beta.threads.retrieve(thread.id)).tool_resources
    assert resources is None or resources.file_search is None
    assert_error(await http.post("/v1/threads", json={"messages": [bad]}), 404)
    assistant = await client.beta.assistants.create(model="fake-model")
    assert_error(await http.post(f"/v1/threads/{thread.id}/runs", json={
        "assistant_id": assistant.id, "additional_messages": [bad]}), 404)
    assert (await client.beta.threads.runs.list(thread.id)).data == []
    assert_error(await http.post("/v1/threads/runs", json={
        "assistant_id": assistant.id, "thread": {"messages": [bad]}}), 404)

    # Another project's file is "not found" too.
    _, key_a = await new_key(settings, "attach-project-a")
    _, key_b = await new_key(settings, "attach-project-b")
    async with serve(settings, auth_mode="required") as other:
        upload_a = await other.post("/v1/files", headers=bearer(key_a),
                                    files={"file": ("a.txt", b"Project A's secret.")},
                                    data={"purpose": "assistants"})
        file_a = upload_a.json()["id"]
        thread_b = (await other.post("/v1/threads", headers=bearer(key_b), json={})).json()
        response = await other.post(
            f"/v1/threads/{thread_b['id']}/messages", headers=bearer(key_b),
            json={**bad, "attachments": [{"file_id": file_a, "tools": FILE_SEARCH}]})
        assert_error(response, 404, contains=file_a)
        # Project B's own file works, and the store is project B's.
        upload_b = await other.post("/v1/files", headers=bearer(key_b),
                                    files={"file": ("b.txt", b"Project B's notes.")},
                                    data={"purpose": "assistants"})
        response = await other.post(
            f"/v1/threads/{thread_b['id']}/messages", headers=bearer(key_b),
            json={**bad, "attachments": [{"file_id": upload_b.json()["id"],
                                          "tools": FILE_SEARCH}]})
        assert response.status_code == 200, response.text
        thread_b = (await other.get(f"/v1/threads/{thread_b['id']}",
                                    headers=bearer(key_b))).json()
        [store_b] = thread_b["tool_resources"]["file_search"]["vector_store_ids"]
        assert (await other.get(f"/v1/vector_stores/{store_b}",
                                headers=bearer(key_b))).status_code == 200
        assert (await other.get(f"/v1/vector_stores/{store_b}",
                                headers=bearer(key_a))).status_code == 404
