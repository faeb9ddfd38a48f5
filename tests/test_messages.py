"""Messages through the official SDK (both base URLs) and raw HTTP, with exact wire shapes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai.types.beta.threads import Message

from core import ids
from core.tables import MessageRow
from tests.wire import assert_wire

# The SDK flags every Assistants method as deprecated; that is why this project exists.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The Assistants API is deprecated:DeprecationWarning"
)

IMAGE_URL = "https://example.com/dog.webp"


async def new_thread(http: httpx.AsyncClient) -> str:
    response = await http.post("/v1/threads", json={})
    assert response.status_code == 200
    thread_id: str = response.json()["id"]
    return thread_id


async def post_message(http: httpx.AsyncClient, thread_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("role", "user")
    body.setdefault("content", "hi")
    response = await http.post(f"/v1/threads/{thread_id}/messages", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_create_retrieve_modify_delete(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create()
    before = int(time.time())
    created = await client.beta.threads.messages.create(
        thread.id, role="user", content="How does AI work?", metadata={"lang": "en"}
    )
    assert created.id.startswith("msg_")
    assert created.object == "thread.message"
    assert created.thread_id == thread.id
    assert created.role == "user"
    assert created.status == "completed"
    assert before <= created.created_at <= int(time.time())
    assert created.completed_at == created.created_at
    assert created.incomplete_at is None and created.incomplete_details is None
    assert created.assistant_id is None and created.run_id is None
    assert created.attachments == []
    assert created.metadata == {"lang": "en"}
    assert len(created.content) == 1 and created.content[0].type == "text"
    assert created.content[0].text.value == "How does AI work?"
    assert created.content[0].text.annotations == []

    fetched = await client.beta.threads.messages.retrieve(created.id, thread_id=thread.id)
    assert fetched == created

    updated = await client.beta.threads.messages.update(
        created.id, thread_id=thread.id, metadata={"reviewed": "yes"}
    )
    assert updated.metadata == {"reviewed": "yes"}  # replaced, not merged
    assert updated.content == created.content
    assert (await client.beta.threads.messages.retrieve(created.id, thread_id=thread.id)) == updated

    deleted = await client.beta.threads.messages.delete(created.id, thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id, "thread.message.deleted", True)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.beta.threads.messages.retrieve(created.id, thread_id=thread.id)
    assert caught.value.body == {
        "message": f"No message found with id '{created.id}'.",
        "type": "invalid_request_error", "param": None, "code": None,
    }
    assert (await client.beta.threads.messages.list(thread.id)).data == []


async def test_content_parts_and_attachments(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create()
    # A file_search attachment must name a real file (it joins the thread's vector store).
    doc = await client.files.create(file=("doc.txt", b"Some text."), purpose="assistants")
    # An image_file part must name a file of the caller's project too.
    image = await client.files.create(file=("img.png", b"\x89PNG"), purpose="vision")
    message = await client.beta.threads.messages.create(
        thread.id,
        role="assistant",
        content=[
            {"type": "text", "text": "Look:"},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
            {"type": "image_file", "image_file": {"file_id": image.id, "detail": "high"}},
        ],
        attachments=[{"file_id": doc.id, "tools": [{"type": "file_search"}]}],
    )
    assert message.role == "assistant"
    assert [part.type for part in message.content] == ["text", "image_url", "image_file"]
    text, image_url, image_file = message.content
    assert text.text.value == "Look:" and text.text.annotations == []  # type: ignore[union-attr]
    assert image_url.image_url.url == IMAGE_URL  # type: ignore[union-attr]
    assert image_url.image_url.detail == "auto"  # type: ignore[union-attr]
    assert image_file.image_file.file_id == image.id  # type: ignore[union-attr]
    assert image_file.image_file.detail == "high"  # type: ignore[union-attr]
    assert message.attachments is not None and len(message.attachments) == 1
    assert message.attachments[0].file_id == doc.id
    assert [tool.type for tool in message.attachments[0].tools or []] == ["file_search"]


async def test_message_wire_shape_matches_sdk_type(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    file_id = (await http.post("/v1/files", data={"purpose": "assistants"},
                               files={"file": ("1.csv", b"a,b", "text/csv")})).json()["id"]
    plain = await post_message(http, thread_id, content="plain")
    parts = await post_message(http, thread_id, role="assistant", content=[
        {"type": "text", "text": "t"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
    ], attachments=[{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}])
    for body in (plain, parts):
        assert_wire(Message, body)
        assert isinstance(body["created_at"], int) and body["created_at"] < 10**10  # seconds
        assert abs(body["created_at"] - time.time()) < 60
    assert plain["content"] == [{"type": "text", "text": {"value": "plain", "annotations": []}}]
    assert parts["content"][1] == {"type": "image_url",
                                   "image_url": {"url": IMAGE_URL, "detail": "auto"}}
    assert parts["attachments"] == [{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}]

    base = f"/v1/threads/{thread_id}/messages"
    fetched = await http.get(f"{base}/{plain['id']}")
    assert_wire(Message, fetched.json())
    assert fetched.json() == plain

    modified = await http.post(f"{base}/{plain['id']}", json={"metadata": {"a": "b"}})
    assert_wire(Message, modified.json())
    assert modified.json() == {**plain, "metadata": {"a": "b"}}

    listed = (await http.get(base)).json()
    assert set(listed) == {"object", "data", "first_id", "last_id", "has_more"}
    assert listed["object"] == "list" and listed["has_more"] is False
    assert (listed["first_id"], listed["last_id"]) == (parts["id"], plain["id"])  # desc
    assert [item["id"] for item in listed["data"]] == [parts["id"], plain["id"]]
    for item in listed["data"]:
        assert_wire(Message, item)

    deleted = await http.delete(f"/threads/{thread_id}/messages/{parts['id']}")
    assert deleted.json() == {"id": parts["id"], "object": "thread.message.deleted",
                              "deleted": True}


async def test_list_pagination(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create()
    made = [
        (await client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}")).id
        for i in range(5)
    ]
    messages = client.beta.threads.messages

    desc = await messages.list(thread.id)
    assert [m.id for m in desc.data] == made[::-1]
    assert desc.has_more is False

    first = await messages.list(thread.id, order="asc", limit=2)
    assert [m.id for m in first.data] == made[:2]
    assert first.has_more is True

    second = await messages.list(thread.id, order="asc", limit=2, after=made[1])
    assert [m.id for m in second.data] == made[2:4]
    assert second.has_more is True
    last = await messages.list(thread.id, order="asc", limit=2, after=made[3])
    assert [m.id for m in last.data] == made[4:]
    assert last.has_more is False

    after_desc = await messages.list(thread.id, order="desc", limit=2, after=made[3])
    assert [m.id for m in after_desc.data] == [made[2], made[1]]

    before_asc = await messages.list(thread.id, order="asc", limit=2, before=made[3])
    assert [m.id for m in before_asc.data] == [made[1], made[2]]
    before_desc = await messages.list(thread.id, order="desc", limit=2, before=made[1])
    assert [m.id for m in before_desc.data] == [made[3], made[2]]

    walked = [m.id async for m in messages.list(thread.id, order="asc", limit=2)]
    assert walked == made


async def test_list_cursor_from_another_thread_is_rejected(http: httpx.AsyncClient) -> None:
    other = await post_message(http, await new_thread(http))
    thread_id = await new_thread(http)
    await post_message(http, thread_id)
    response = await http.get(f"/v1/threads/{thread_id}/messages", params={"after": other["id"]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "after"


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"order": "sideways"}, "order")],
)
async def test_invalid_list_params(
    http: httpx.AsyncClient, params: dict[str, Any], param: str
) -> None:
    thread_id = await new_thread(http)
    response = await http.get(f"/v1/threads/{thread_id}/messages", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_list_filters_by_run_id(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, app: FastAPI
) -> None:
    thread_id = await new_thread(http)
    await post_message(http, thread_id, content="from the user")
    run_id = ids.new_id(ids.RUN)
    message_id = ids.new_id(ids.MESSAGE)
    now = int(time.time())
    async with app.state.sessions() as session:
        session.add(MessageRow(
            id=message_id, thread_id=thread_id, created_at=now, role="assistant",
            content=[{"type": "text", "text": {"value": "from the run", "annotations": []}}],
            status="completed", completed_at=now, assistant_id="asst_x", run_id=run_id,
            attachments=[], metadata_={},
        ))
        await session.commit()

    everything = await client.beta.threads.messages.list(thread_id)
    assert len(everything.data) == 2
    filtered = await client.beta.threads.messages.list(thread_id, run_id=run_id)
    assert [m.id for m in filtered.data] == [message_id]
    assert filtered.data[0].run_id == run_id and filtered.data[0].assistant_id == "asst_x"
    other = await client.beta.threads.messages.list(thread_id, run_id=ids.new_id(ids.RUN))
    assert other.data == []
