"""Assistants CRUD through the official SDK, on both base URLs, with exact wire shapes."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.beta import Assistant

from tests.wire import assert_wire

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "getCurrentWeather",
        "description": "Get the weather in location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    },
}


async def test_create_retrieve_modify_delete(client: openai.AsyncOpenAI) -> None:
    created = await client.beta.assistants.create(
        model="neural-chat-7b-v3-2",
        name="Weather Bot",
        instructions="You are a weather bot.",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        metadata={"team": "ops"},
    )
    assert created.id.startswith("asst_")
    assert created.object == "assistant"
    assert created.tools[0].type == "function"
    assert created.tools[0].function.name == "getCurrentWeather"
    assert created.metadata == {"team": "ops"}
    assert created.response_format == "auto"

    fetched = await client.beta.assistants.retrieve(created.id)
    assert fetched == created

    updated = await client.beta.assistants.update(
        created.id, name="Renamed", metadata={"team": "dev"}, temperature=0.2
    )
    assert (updated.name, updated.metadata, updated.temperature) == ("Renamed", {"team": "dev"}, 0.2)
    assert updated.instructions == "You are a weather bot."  # untouched fields stay

    deleted = await client.beta.assistants.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "assistant.deleted", True)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.beta.assistants.retrieve(created.id)
    assert caught.value.body == {
        "message": f"No assistant found with id '{created.id}'.",
        "type": "invalid_request_error", "param": None, "code": None,
    }


async def test_wire_shape_matches_sdk_type(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/assistants", json={"model": "m", "tools": [WEATHER_TOOL]})
    assert response.status_code == 200
    body = response.json()
    assert_wire(Assistant, body)
    assert body["description"] is None and body["tool_resources"] == {}
    assert isinstance(body["created_at"], int) and body["created_at"] < 10**10  # seconds


async def test_list_pagination_is_stable_under_inserts(client: openai.AsyncOpenAI) -> None:
    tag = {"batch": "pagination"}
    made = [(await client.beta.assistants.create(model="m", metadata=tag)).id for _ in range(5)]
    first = await client.beta.assistants.list(limit=2, order="asc", after=made[0])
    assert [a.id for a in first.data] == made[1:3]
    assert first.has_more is True
    # A new assistant created between pages does not shift the next page.
    await client.beta.assistants.create(model="m")
    second = await client.beta.assistants.list(limit=2, order="asc", after=first.data[-1].id)
    assert [a.id for a in second.data] == made[3:5]


async def test_before_cursor_returns_the_adjacent_page(http: httpx.AsyncClient) -> None:
    made = [(await http.post("/v1/assistants", json={"model": "m"})).json()["id"] for _ in range(4)]
    page = (await http.get("/v1/assistants", params={"order": "desc", "before": made[1],
                                                     "limit": 2})).json()
    # desc order: items newer than made[1], the two closest to it, still newest first.
    assert [a["id"] for a in page["data"]] == [made[3], made[2]]
    assert page["first_id"] == made[3] and page["last_id"] == made[2]


async def test_sdk_auto_pagination_walks_everything(client: openai.AsyncOpenAI) -> None:
    made = {(await client.beta.assistants.create(model="m", name="walk")).id for _ in range(7)}
    seen = {a.id async for a in client.beta.assistants.list(limit=3)}
    assert made <= seen


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "model", "missing_required_parameter"),
        ({"model": "m", "bogus": 1}, "bogus", "unknown_parameter"),
        ({"model": "m", "name": 5}, "name", "invalid_type"),
        ({"model": "m", "name": "x" * 257}, "name", "string_above_max_length"),
        ({"model": "m", "temperature": 3}, "temperature", "value_above_max_value"),
        ({"model": "m", "tools": [{"type": "nope"}]}, "tools[0]", "invalid_value"),
        ({"model": "m", "tools": [{"type": "function", "function": {}}]},
         "tools[0].function.name", "missing_required_parameter"),
        ({"model": "m", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata",
         "object_above_max_properties"),
        ({"model": "m", "metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length"),
        ({"model": "m", "metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
    ],
)
async def test_invalid_bodies_get_openai_errors(
    http: httpx.AsyncClient, body: dict[str, object], param: str, code: str
) -> None:
    response = await http.post("/v1/assistants", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert "detail" not in response.json()


async def test_wrong_id_prefix_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/assistants/thread_abc")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Invalid 'assistant_id': 'thread_abc'. Expected an ID that begins with 'asst'."
    )


async def test_framework_errors_use_the_openai_envelope(http: httpx.AsyncClient) -> None:
    not_json = await http.post("/v1/assistants", content=b"{not json",
                               headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "invalid_json"

    wrong_method = await http.put("/v1/assistants")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"

    unknown = await http.get("/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nothing-here)."

    bad_limit = await http.get("/v1/assistants", params={"limit": 101})
    assert bad_limit.status_code == 400
    assert bad_limit.json()["error"]["param"] == "limit"
