"""Messages: the errors - unknown and foreign ids, wrong prefixes, invalid bodies, and a
thread locked by its active run - in OpenAI's error shape."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from core import ids
from core.tables import RunRow
from tests.test_messages import new_thread, post_message


async def test_message_for_unknown_thread_is_a_404(http: httpx.AsyncClient) -> None:
    thread_id = "thread_missing"
    expected = {"error": {"message": f"No thread found with id '{thread_id}'.",
                          "type": "invalid_request_error", "param": None, "code": None}}
    created = await http.post(f"/v1/threads/{thread_id}/messages",
                              json={"role": "user", "content": "x"})
    assert created.status_code == 404
    assert created.json() == expected
    listed = await http.get(f"/v1/threads/{thread_id}/messages")
    assert listed.status_code == 404
    assert listed.json() == expected


async def test_message_is_only_found_in_its_own_thread(http: httpx.AsyncClient) -> None:
    message = await post_message(http, await new_thread(http))
    other = await new_thread(http)
    url = f"/v1/threads/{other}/messages/{message['id']}"
    for response in (await http.get(url), await http.post(url, json={"metadata": {}}),
                     await http.delete(url)):
        assert response.status_code == 404
        assert response.json()["error"]["message"] == f"No message found with id '{message['id']}'."
    # Still there, untouched, in its own thread.
    own = await http.get(f"/v1/threads/{message['thread_id']}/messages/{message['id']}")
    assert own.json() == message


async def test_unknown_message_is_a_404(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    response = await http.get(f"/v1/threads/{thread_id}/messages/msg_missing")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No message found with id 'msg_missing'."


@pytest.mark.parametrize(
    ("path", "param", "expected"),
    [
        ("/v1/threads/asst_x/messages", "thread_id", "thread"),
        ("/threads/asst_x/messages", "thread_id", "thread"),
        ("/v1/threads/thread_abc/messages/asst_x", "message_id", "msg"),
    ],
)
async def test_wrong_id_prefixes_are_400s(
    http: httpx.AsyncClient, path: str, param: str, expected: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == (
        f"Invalid '{param}': 'asst_x'. Expected an ID that begins with '{expected}'."
    )
    assert error["param"] == param


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"role": "system", "content": "x"}, "role", "invalid_value"),
        ({"content": "x"}, "role", "missing_required_parameter"),
        ({"role": "user"}, "content", "missing_required_parameter"),
        ({"role": "user", "content": []}, "content", "empty_array"),
        ({"role": "user", "content": 5}, "content", "invalid_type"),
        ({"role": "user", "content": [{"type": "audio"}]}, "content[0]", "invalid_value"),
        ({"role": "user", "content": [{"type": "text"}]}, "content[0].text",
         "missing_required_parameter"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
         "content[0].image_url.url", "missing_required_parameter"),
        ({"role": "user", "content": "x", "bogus": 1}, "bogus", "unknown_parameter"),
        ({"role": "user", "content": "x", "metadata": {f"k{i}": "v" for i in range(17)}},
         "metadata", "object_above_max_properties"),
        ({"role": "user", "content": "x", "metadata": {"k": "v" * 513}}, "metadata",
         "string_above_max_length"),
        ({"role": "user", "content": "x", "metadata": {"k" * 65: "v"}}, "metadata",
         "string_above_max_length"),
    ],
)
async def test_invalid_create_bodies_get_openai_errors(
    http: httpx.AsyncClient, body: dict[str, object], param: str, code: str
) -> None:
    thread_id = await new_thread(http)
    response = await http.post(f"/v1/threads/{thread_id}/messages", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert (await http.get(f"/v1/threads/{thread_id}/messages")).json()["data"] == []


async def test_empty_content_error_message(http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(http)
    response = await http.post(f"/v1/threads/{thread_id}/messages",
                               json={"role": "user", "content": []})
    assert response.json()["error"]["message"] == (
        "Invalid 'content': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead."
    )


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata",
         "object_above_max_properties"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
        ({"content": "new"}, "content", "unknown_parameter"),
    ],
)
async def test_invalid_modify_bodies_get_openai_errors(
    http: httpx.AsyncClient, body: dict[str, object], param: str, code: str
) -> None:
    thread_id = await new_thread(http)
    message = await post_message(http, thread_id, metadata={"a": "b"})
    url = f"/v1/threads/{thread_id}/messages/{message['id']}"
    response = await http.post(url, json=body)
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)
    assert (await http.get(url)).json() == message


async def test_active_run_locks_the_thread(http: httpx.AsyncClient, app: FastAPI) -> None:
    thread_id = await new_thread(http)
    run_id = ids.new_id(ids.RUN)
    async with app.state.sessions() as session:
        session.add(RunRow(
            id=run_id, thread_id=thread_id, assistant_id="asst_lock", created_at=int(time.time()),
            status="in_progress", model="m", tools=[], metadata_={},
            truncation_strategy={"type": "auto", "last_messages": None},
            tool_choice="auto", response_format="auto",
        ))
        await session.commit()

    url = f"/v1/threads/{thread_id}/messages"
    blocked = await http.post(url, json={"role": "user", "content": "let me in"})
    assert blocked.status_code == 400
    error = blocked.json()["error"]
    assert error["message"] == f"Thread {thread_id} already has an active run {run_id}."
    assert error["type"] == "invalid_request_error"
    assert (await http.get(url)).json()["data"] == []

    async with app.state.sessions() as session:
        await session.execute(
            update(RunRow).where(RunRow.id == run_id).values(status="completed")  # type: ignore[arg-type]
        )
        await session.commit()

    allowed = await http.post(url, json={"role": "user", "content": "let me in"})
    assert allowed.status_code == 200, allowed.text
    assert [m["id"] for m in (await http.get(url)).json()["data"]] == [allowed.json()["id"]]
