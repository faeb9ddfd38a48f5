"""File ids: OpenAI's `file-…` for new files, `file_…` (earlier releases) still accepted everywhere,
OpenAI's 404 for a missing file, a 400 for an id that is no file id at all."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from core import ids
from core.tables import DEFAULT_PROJECT, FileRow
from tests.sdk_client import sdk_over

pytestmark = [pytest.mark.usefixtures("worker"),
              pytest.mark.filterwarnings("ignore:The Assistants API is deprecated")]
OPENAI_FILE_ID = re.compile(r"file-[A-Za-z0-9]{22}")
FILE_SEARCH: list[Any] = [{"type": "file_search"}]  # Any: the SDK wants its TypedDicts


@pytest.fixture
async def sdk(http: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    # One base path is enough here (the `client` fixture runs each test on two).
    yield sdk_over(http)


async def _legacy_file(app: FastAPI, text: str) -> str:
    """A file as releases before `file-` ids stored it: `new_id(FILE)`, bytes under
    `files/{id}`, one row, in the project open-mode requests act for."""
    file_id = ids.new_id(ids.FILE)
    assert re.fullmatch(r"file_[A-Za-z0-9]{24}", file_id)
    data = text.encode()
    await app.state.storage.put(f"files/{file_id}", data, "text/plain")
    async with app.state.sessions() as session:
        session.add(FileRow(id=file_id, project_id=DEFAULT_PROJECT, created_at=int(time.time()),
                            bytes=len(data), filename="legacy.txt", purpose="assistants",
                            content_type="text/plain", storage_key=f"files/{file_id}"))
        await session.commit()
    return file_id


def test_new_file_ids_are_openais_shape_and_both_forms_are_file_ids() -> None:
    made = {ids.new_file_id() for _ in range(3000)}
    assert len(made) == 3000
    assert all(OPENAI_FILE_ID.fullmatch(file_id) for file_id in made)
    for position in range(5, 27):  # every body character varies
        assert len({file_id[position] for file_id in made}) > 40
    assert ids.is_file_id("file-abc") and ids.is_file_id("file_abc")
    for bad in ("file", "file-", "file_", "filex", "File-abc", "vs_abc", "", "-file-abc"):
        assert not ids.is_file_id(bad), bad


async def test_uploads_get_openai_file_ids(sdk: openai.AsyncOpenAI) -> None:
    created = await sdk.files.create(file=("a.txt", b"alpha"), purpose="assistants")
    assert OPENAI_FILE_ID.fullmatch(created.id), created.id
    assert (await sdk.files.retrieve(created.id)).id == created.id


@pytest.mark.parametrize("file_id", ["file-abc", "file-4wDz5b167pAf72nx1h9eiN",
                                     "file_abc", "file_Nz4Zu3UiierWxYuirGHfXOQa"])
async def test_a_missing_file_is_openais_404_in_either_form(
    http: httpx.AsyncClient, file_id: str
) -> None:
    for method, path in (("GET", f"/v1/files/{file_id}"), ("DELETE", f"/v1/files/{file_id}"),
                         ("GET", f"/v1/files/{file_id}/content")):
        response = await http.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": {
            "message": f"No such File object: {file_id}", "type": "invalid_request_error",
            "param": "id", "code": None}}


@pytest.mark.parametrize("file_id", ["abc", "file", "file-", "file_", "filex1", "File-abc",
                                     "vs_abc"])
async def test_an_id_of_another_shape_is_a_400(http: httpx.AsyncClient, file_id: str) -> None:
    store = (await http.post("/v1/vector_stores", json={})).json()
    for path in (f"/v1/files/{file_id}", f"/v1/vector_stores/{store['id']}/files/{file_id}"):
        response = await http.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {"error": {
            "message": f"Invalid 'file_id': '{file_id}'. Expected an ID that begins with 'file'.",
            "type": "invalid_request_error", "param": "file_id", "code": "invalid_value"}}


async def test_a_file_stored_with_the_old_id_form_works_everywhere(
    app: FastAPI, sdk: openai.AsyncOpenAI
) -> None:
    marker = uuid.uuid4().hex
    file_id = await _legacy_file(app, f"Quokkas live on Rottnest Island. {marker}")

    # /files
    assert (await sdk.files.retrieve(file_id)).filename == "legacy.txt"
    assert marker.encode() in (await sdk.files.content(file_id)).content
    assert file_id in [f.id async for f in sdk.files.list(purpose="assistants")]

    # Vector store files and file batches, and search naming it.
    store = await sdk.vector_stores.create(name="legacy")
    attached = await sdk.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=file_id, poll_interval_ms=50)
    assert (attached.id, attached.status) == (file_id, "completed"), attached.last_error
    assert (await sdk.vector_stores.files.retrieve(file_id, vector_store_id=store.id)).id \
        == file_id
    hits = await sdk.vector_stores.search(store.id, query="quokkas Rottnest")
    assert [hit.file_id for hit in hits.data] == [file_id]
    other = await sdk.vector_stores.create(name="legacy batch")
    batch = await sdk.vector_stores.file_batches.create_and_poll(
        vector_store_id=other.id, file_ids=[file_id], poll_interval_ms=50)
    assert batch.status == "completed" and batch.file_counts.completed == 1
    assert [f.id async for f in sdk.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=other.id)] == [file_id]
    deleted = await sdk.vector_stores.files.delete(file_id, vector_store_id=other.id)
    assert deleted.deleted

    # tool_resources, attachments and image_file parts.
    assistant = await sdk.beta.assistants.create(
        model="fake-model", tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [file_id]},
                        "file_search": {"vector_store_ids": [store.id]}})
    resources = assistant.tool_resources
    assert resources is not None and resources.code_interpreter is not None
    assert resources.code_interpreter.file_ids == [file_id]
    thread = await sdk.beta.threads.create(messages=[{
        "role": "user", "content": [{"type": "image_file", "image_file": {"file_id": file_id}}],
        "attachments": [{"file_id": file_id, "tools": FILE_SEARCH}]}])
    assert thread.tool_resources is not None and thread.tool_resources.file_search is not None
    [thread_store] = thread.tool_resources.file_search.vector_store_ids or []
    assert [f.id async for f in sdk.vector_stores.files.list(thread_store)] == [file_id]
    [message] = (await sdk.beta.threads.messages.list(thread.id)).data
    assert message.content[0].image_file.file_id == file_id  # type: ignore[union-attr]
    assert [a.file_id for a in message.attachments or []] == [file_id]

    # A run's file_search results and the answer's citation name it.
    await sdk.beta.threads.messages.create(
        thread.id, role="user", content='[[call:file_search {"query": "where do quokkas live"}]]')
    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    steps = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id,
                                                   order="asc")
    call = steps.data[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert {r.file_id for r in call.file_search.results} == {file_id}  # type: ignore[union-attr]
    reply = (await sdk.beta.threads.messages.list(thread_id=thread.id)).data[0]
    annotations = reply.content[0].text.annotations  # type: ignore[union-attr]
    assert annotations and {a.file_citation.file_id  # type: ignore[union-attr]
                            for a in annotations} == {file_id}

    # Deleting it; then it is OpenAI's 404 like any missing file.
    assert (await sdk.files.delete(file_id)).deleted
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.files.retrieve(file_id)
    assert caught.value.body == {
        "message": f"No such File object: {file_id}", "type": "invalid_request_error",
        "param": "id", "code": None}
