"""Runs end to end: SDK -> API -> Temporal workflow -> activities -> fake LLM -> Postgres."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep

from tests.fake_llm import FakeLLM
from tests.wire import assert_wire

pytestmark = pytest.mark.usefixtures("worker")

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


async def _assistant(client: openai.AsyncOpenAI, **extra: object) -> str:
    assistant = await client.beta.assistants.create(
        model="fake-model", instructions="You are a weather bot.", **extra  # type: ignore[arg-type]
    )
    return assistant.id


async def test_text_run_completes_with_one_assistant_message(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    assistant_id = await _assistant(client)
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": "hello there [[reply:Hi, human.]]"}]
    )
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    assert run.completed_at is not None and run.started_at is not None
    assert run.expires_at is None
    assert run.usage is not None and run.usage.total_tokens > 0

    messages = await client.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [m.role for m in messages.data] == ["user", "assistant"]
    reply = messages.data[1]
    assert reply.content[0].text.value == "Hi, human."  # type: ignore[union-attr]
    assert (reply.run_id, reply.assistant_id) == (run.id, assistant_id)

    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert [s.type for s in steps.data] == ["message_creation"]
    assert steps.data[0].step_details.message_creation.message_id == reply.id  # type: ignore[union-attr]

    sent = fake_llm.requests_containing("hello there")[-1]
    assert sent["model"] == "fake-model"
    assert sent["messages"][0] == {"role": "system", "content": "You are a weather bot."}
    assert sent["stream"] is True


async def test_weather_bot_flow_from_the_original_readme(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    assistant_id = await _assistant(client, tools=[WEATHER_TOOL], name="Weather Bot")
    thread = await client.beta.threads.create()
    await client.beta.threads.messages.create(
        thread_id=thread.id, role="user",
        content='What is the weather in SF? [[call:getCurrentWeather {"location": "San Francisco, CA"}]]',
    )
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1 and calls[0].id.startswith("call_")
    assert calls[0].function.name == "getCurrentWeather"
    assert json.loads(calls[0].function.arguments) == {"location": "San Francisco, CA"}

    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert [(s.type, s.status) for s in steps.data] == [("tool_calls", "in_progress")]

    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "22C and sunny"}],
    )
    assert done.status == "completed", done.last_error
    messages = await client.beta.threads.messages.list(thread_id=thread.id)
    assert messages.data[0].content[0].text.value == "Tool results: 22C and sunny"  # type: ignore[union-attr]

    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id,
                                                      order="asc")
    assert [(s.type, s.status) for s in steps.data] == [
        ("tool_calls", "completed"), ("message_creation", "completed")]
    recorded = steps.data[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert recorded.function.output == "22C and sunny"  # type: ignore[union-attr]

    # The second model call saw the call and its result as proper tool turns.
    second = fake_llm.requests_containing("22C and sunny")[-1]["messages"]
    assert second[-2]["role"] == "assistant" and second[-2]["tool_calls"][0]["id"] == calls[0].id
    assert second[-1] == {"role": "tool", "content": "22C and sunny", "tool_call_id": calls[0].id}


async def test_create_thread_and_run_poll(client: openai.AsyncOpenAI) -> None:
    assistant_id = await _assistant(client)
    run = await client.beta.threads.create_and_run_poll(
        assistant_id=assistant_id, poll_interval_ms=50,
        thread={"messages": [{"role": "user", "content": "ping [[reply:pong]]"}]},
    )
    assert run.status == "completed"
    messages = await client.beta.threads.messages.list(thread_id=run.thread_id)
    assert messages.data[0].content[0].text.value == "pong"  # type: ignore[union-attr]


async def test_wire_shapes_of_run_step_and_message(http: httpx.AsyncClient) -> None:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    created = await http.post("/v1/threads/runs", json={
        "assistant_id": assistant["id"],
        "thread": {"messages": [{"role": "user", "content": "shape [[reply:ok]]"}]}})
    assert created.status_code == 200, created.text
    run = created.json()
    assert_wire(Run, run)
    assert run["status"] == "queued" and run["expires_at"] == run["created_at"] + 600
    assert run["tool_choice"] == "auto" and run["response_format"] == "auto"
    assert run["truncation_strategy"] == {"type": "auto", "last_messages": None}

    async def current() -> httpx.Response:
        return await http.get(f"/v1/threads/{run['thread_id']}/runs/{run['id']}")

    import asyncio

    for _ in range(200):
        response = await current()
        if response.json()["status"] == "completed":
            break
        assert response.headers["openai-poll-after-ms"]
        await asyncio.sleep(0.05)
    final = response.json()
    assert final["status"] == "completed"
    assert_wire(Run, final)
    steps = (await http.get(f"/v1/threads/{run['thread_id']}/runs/{run['id']}/steps")).json()
    assert_wire(RunStep, steps["data"][0])
    messages = (await http.get(f"/v1/threads/{run['thread_id']}/messages")).json()
    for message in messages["data"]:
        assert_wire(Message, message)
