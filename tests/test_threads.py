"""Threads through the official SDK (both base URLs) and raw HTTP, with exact wire shapes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai.types.beta import Thread
from openai.types.beta.threads import Message
from sqlalchemy import func, select
from sqlmodel import col

from core.tables import MessageRow
from tests.wire import assert_wire

# The SDK flags every Assistants method as deprecated; that is why this project exists.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The Assistants API is deprecated:DeprecationWarning"
)

IMAGE_URL = "https://example.com/cat.png"


async def count_messages(app: FastAPI, thread_id: str) -> int:
    async with app.state.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(MessageRow)
            .where(col(MessageRow.thread_id) == thread_id)
        )
    return int(count or 0)


def not_found_body(kind: str, object_id: str) -> dict[str, Any]:
    return {"message": f"No {kind} found with id '{object_id}'.",
            "type": "invalid_request_error", "param": None, "code": None}


async def test_create_empty_thread_and_retrieve(client: openai.AsyncOpenAI) -> None:
    before = int(time.time())
    created = await client.beta.threads.create()
    assert created.id.startswith("thread_")
    assert created.object == "thread"
    assert created.metadata == {}
    assert before <= created.created_at <= int(time.time())
    assert (await client.beta.threads.messages.list(created.id)).data == []

    fetched = await client.beta.threads.retrieve(created.id)
    assert fetched == created


async def test_create_with_initial_messages_keeps_their_order(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create(
        messages=[
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4", "metadata": {"source": "seed"}},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}},
            ]},
        ],
        metadata={"user": "u1"},
    )
    assert thread.metadata == {"user": "u1"}

    asc = (await client.beta.threads.messages.list(thread.id, order="asc")).data
    assert [m.role for m in asc] == ["user", "assistant", "user"]
    assert all(m.thread_id == thread.id and m.status == "completed" for m in asc)
    assert all(m.run_id is None and m.assistant_id is None for m in asc)
    first, second, third = asc
    assert first.content[0].type == "text"
    assert first.content[0].text.value == "What is 2 + 2?"
    assert first.content[0].text.annotations == []
    assert second.content[0].text.value == "4"  # type: ignore[union-attr]
    assert second.metadata == {"source": "seed"}
    assert [part.type for part in third.content] == ["text", "image_url"]
    assert third.content[0].text.value == "And this picture?"  # type: ignore[union-attr]
    assert third.content[1].image_url.url == IMAGE_URL  # type: ignore[union-attr]
    assert third.content[1].image_url.detail == "low"  # type: ignore[union-attr]

    desc = (await client.beta.threads.messages.list(thread.id)).data  # default order: desc
    assert [m.id for m in desc] == [m.id for m in reversed(asc)]


async def test_thread_wire_shape_matches_sdk_type(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/threads", json={
        "messages": [{"role": "user", "content": "hello"}],
        "metadata": {"k": "v"},
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert_wire(Thread, body)
    assert body["object"] == "thread" and body["metadata"] == {"k": "v"}
    assert body["tool_resources"] == {}
    assert isinstance(body["created_at"], int) and body["created_at"] < 10**10  # seconds
    assert abs(body["created_at"] - time.time()) < 60

    for path in (f"/v1/threads/{body['id']}", f"/threads/{body['id']}"):
        fetched = await http.get(path)
        assert fetched.status_code == 200
        assert_wire(Thread, fetched.json())
        assert fetched.json() == body

    listed = (await http.get(f"/v1/threads/{body['id']}/messages")).json()
    assert len(listed["data"]) == 1
    message = listed["data"][0]
    assert_wire(Message, message)
    assert message["created_at"] == body["created_at"]


async def test_create_without_a_body(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/threads")
    assert response.status_code == 200, response.text
    assert_wire(Thread, response.json())
    assert response.json()["metadata"] == {}


async def test_modify_replaces_metadata_and_sets_tool_resources(
    client: openai.AsyncOpenAI,
) -> None:
    thread = await client.beta.threads.create(metadata={"a": "1", "b": "2"})

    updated = await client.beta.threads.update(thread.id, metadata={"c": "3"})
    assert updated.metadata == {"c": "3"}  # replaced, not merged
    assert updated.created_at == thread.created_at

    # Referenced objects must exist in the caller's project (tests/test_references.py).
    file_id = (await client.files.create(file=("a.txt", b"a"), purpose="assistants")).id
    store_id = (await client.vector_stores.create()).id
    with_resources = await client.beta.threads.update(
        thread.id, tool_resources={"code_interpreter": {"file_ids": [file_id]}}
    )
    assert with_resources.tool_resources is not None
    assert with_resources.tool_resources.code_interpreter is not None
    assert with_resources.tool_resources.code_interpreter.file_ids == [file_id]
    assert with_resources.metadata == {"c": "3"}  # untouched when not sent

    fetched = await client.beta.threads.retrieve(thread.id)
    assert fetched == with_resources

    search = await client.beta.threads.update(
        thread.id, tool_resources={"file_search": {"vector_store_ids": [store_id]}}
    )
    assert search.tool_resources is not None
    assert search.tool_resources.file_search is not None
    assert search.tool_resources.file_search.vector_store_ids == [store_id]
    # Only the tool given is replaced (tests/test_vector_store_helper.py has the rules).
    assert search.tool_resources.code_interpreter is not None
    assert search.tool_resources.code_interpreter.file_ids == [file_id]


async def test_tool_resources_on_create_round_trip(http: httpx.AsyncClient) -> None:
    files = [(await http.post("/v1/files", data={"purpose": "assistants"},
                              files={"file": (name, b"x", "text/plain")})).json()["id"]
             for name in ("1.txt", "2.txt")]
    store = (await http.post("/v1/vector_stores", json={})).json()["id"]
    response = await http.post("/v1/threads", json={"tool_resources": {
        "code_interpreter": {"file_ids": files},
        "file_search": {"vector_store_ids": [store]},
    }})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_wire(Thread, body)
    assert body["tool_resources"] == {
        "code_interpreter": {"file_ids": files},
        "file_search": {"vector_store_ids": [store]},
    }

    cleared = await http.post(f"/v1/threads/{body['id']}", json={"metadata": {"x": "y"}})
    assert cleared.json()["tool_resources"] == body["tool_resources"]


async def test_modify_with_empty_body_changes_nothing(http: httpx.AsyncClient) -> None:
    body = (await http.post("/v1/threads", json={"metadata": {"keep": "me"}})).json()
    response = await http.post(f"/v1/threads/{body['id']}", json={})
    assert response.status_code == 200
    assert response.json() == body


async def test_delete_thread_removes_it_and_its_messages(
    client: openai.AsyncOpenAI, app: FastAPI
) -> None:
    thread = await client.beta.threads.create(messages=[
        {"role": "user", "content": "one"}, {"role": "user", "content": "two"},
    ])
    await client.beta.threads.messages.create(thread.id, role="user", content="three")
    assert await count_messages(app, thread.id) == 3

    deleted = await client.beta.threads.delete(thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (thread.id, "thread.deleted", True)

    with pytest.raises(openai.NotFoundError) as caught:
        await client.beta.threads.retrieve(thread.id)
    assert caught.value.body == not_found_body("thread", thread.id)
    assert await count_messages(app, thread.id) == 0

    with pytest.raises(openai.NotFoundError) as listed:
        await client.beta.threads.messages.list(thread.id)
    assert listed.value.body == not_found_body("thread", thread.id)

    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.delete(thread.id)


async def test_delete_wire_shape(http: httpx.AsyncClient) -> None:
    thread_id = (await http.post("/v1/threads", json={})).json()["id"]
    response = await http.delete(f"/threads/{thread_id}")
    assert response.status_code == 200
    assert response.json() == {"id": thread_id, "object": "thread.deleted", "deleted": True}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unknown_thread_is_a_404(http: httpx.AsyncClient, method: str) -> None:
    thread_id = "thread_doesnotexist"
    kwargs: dict[str, Any] = {"json": {"metadata": {}}} if method == "POST" else {}
    response = await http.request(method, f"/v1/threads/{thread_id}", **kwargs)
    assert response.status_code == 404
    assert response.json() == {"error": not_found_body("thread", thread_id)}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_wrong_thread_id_prefix_is_a_400(http: httpx.AsyncClient, method: str) -> None:
    kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
    response = await http.request(method, "/v1/threads/asst_x", **kwargs)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == (
        "Invalid 'thread_id': 'asst_x'. Expected an ID that begins with 'thread'."
    )
    assert (error["type"], error["param"]) == ("invalid_request_error", "thread_id")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"bogus": 1}, "bogus", "unknown_parameter"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": []}]}, "messages[0].content", "empty_array"),
        ({"messages": "hello"}, "messages", "invalid_type"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata",
         "object_above_max_properties"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        ({"tool_resources": {"code_interpreter": {"file_ids": [f"f{i}" for i in range(21)]}}},
         "tool_resources.code_interpreter.file_ids", "array_above_max_length"),
        ({"tool_resources": {"file_search": {"vector_store_ids": ["vs_1", "vs_2"]}}},
         "tool_resources.file_search.vector_store_ids", "array_above_max_length"),
    ],
)
async def test_invalid_create_bodies_get_openai_errors(
    http: httpx.AsyncClient, body: dict[str, object], param: str, code: str
) -> None:
    response = await http.post("/v1/threads", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


async def test_invalid_role_names_the_supported_values(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/threads", json={"messages": [{"role": "system", "content": "x"}]}
    )
    message = response.json()["error"]["message"]
    assert message.startswith("Invalid value: 'system'.")
    assert "'user'" in message and "'assistant'" in message


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata",
         "object_above_max_properties"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
        ({"messages": []}, "messages", "unknown_parameter"),
    ],
)
async def test_invalid_modify_bodies_get_openai_errors(
    http: httpx.AsyncClient, body: dict[str, object], param: str, code: str
) -> None:
    thread = (await http.post("/v1/threads", json={"metadata": {"a": "b"}})).json()
    response = await http.post(f"/v1/threads/{thread['id']}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)
    # A rejected modification changes nothing.
    assert (await http.get(f"/v1/threads/{thread['id']}")).json() == thread
