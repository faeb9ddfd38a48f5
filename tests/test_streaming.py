"""Streaming runs: OpenAI's SSE events through the official SDK helpers and raw HTTP."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as redis
from openai import AsyncAssistantEventHandler
from openai.types.beta.threads import Message, MessageDelta, Text, TextDelta

from core.settings import Settings
from launcher.processes import ChildProcess, free_port
from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.usefixtures("worker")

TOOL = {"type": "function", "function": {"name": "getCurrentWeather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}
TERMINAL = {"thread.run.completed", "thread.run.failed", "thread.run.cancelled",
            "thread.run.expired", "thread.run.incomplete"}


class Recorder(AsyncAssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []

    async def on_event(self, event: Any) -> None:
        self.events.append(event.event)

    async def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")


def _check_order(events: list[str]) -> None:
    """The order SDKs rely on: created before in_progress before deltas before completed."""
    if "thread.message.delta" in events:
        first_delta = events.index("thread.message.delta")
        assert events.index("thread.message.created") < first_delta
        assert first_delta < events.index("thread.message.completed")
    if "thread.run.step.delta" in events:
        assert events.index("thread.run.step.created") < events.index("thread.run.step.delta")
    assert events.index("thread.run.created") < events.index("thread.run.queued")
    assert events.index("thread.run.queued") < events.index("thread.run.in_progress")
    # in_progress is published while the model is asked, and still comes first.
    for announced in ("thread.run.step.created", "thread.message.created"):
        if announced in events:
            assert events.index("thread.run.in_progress") < events.index(announced)


async def _assistant(client: openai.AsyncOpenAI) -> str:
    return (await client.beta.assistants.create(model="fake-model", tools=[TOOL])).id  # type: ignore[list-item]


async def test_text_run_streams_token_by_token(client: openai.AsyncOpenAI) -> None:
    assistant_id = await _assistant(client)
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": "[[tokens:12]] [[tokendelay:5]]"}])
    handler = Recorder()
    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        await stream.until_done()
    run = await stream.get_final_run()
    assert run.status == "completed"
    assert handler.events[-1] == "thread.run.completed"
    _check_order(handler.events)
    assert len(handler.deltas) > 5  # real token streaming, not one blob
    stored = await client.beta.threads.messages.list(thread_id=thread.id)
    stored_text = stored.data[0].content[0].text.value  # type: ignore[union-attr]
    assert "".join(handler.deltas) == stored_text == " ".join(f"w{i}" for i in range(1, 13))
    final_messages = await stream.get_final_messages()
    assert [m.id for m in final_messages] == [stored.data[0].id]


async def test_every_redis_key_a_streamed_run_leaves_expires(
        client: openai.AsyncOpenAI, settings: Settings) -> None:
    """Streams are bounded in time: the run's event stream and its record of streamed text
    both carry a TTL (set once, not per token) of at most a day."""
    assistant_id = await _assistant(client)
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": "[[tokens:8]]"}])
    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id) as stream:
        await stream.until_done()
    run = await stream.get_final_run()
    assert run.status == "completed"
    redis_client = redis.from_url(settings.redis_url)
    try:
        keys = sorted([k.decode() async for k in redis_client.scan_iter(f"run:{run.id}:*")])
        assert keys == sorted([f"run:{run.id}:events",
                               f"run:{run.id}:text:{stream.current_message_snapshot.id}"])  # type: ignore[union-attr]
        for key in keys:
            assert 0 < await redis_client.ttl(key) <= 24 * 3600, key
    finally:
        await redis_client.aclose()


async def test_function_run_stream_then_submit_tool_outputs_stream(
    client: openai.AsyncOpenAI,
) -> None:
    assistant_id = await _assistant(client)
    thread = await client.beta.threads.create(messages=[{
        "role": "user", "content": '[[call:getCurrentWeather {"location": "Paris"}]]'}])
    first = Recorder()
    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=first
    ) as stream:
        await stream.until_done()
    run = await stream.get_final_run()
    assert run.status == "requires_action"
    assert first.events[-1] == "thread.run.requires_action"  # the stream ends there
    _check_order(first.events)
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    # Streamed step deltas assemble to exactly the call (no doubled ids).
    steps = await stream.get_final_run_steps()
    streamed_call = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert streamed_call.id == call.id
    assert json.loads(streamed_call.function.arguments) == {"location": "Paris"}  # type: ignore[union-attr]

    second = Recorder()
    async with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, event_handler=second,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
    ) as resumed:
        await resumed.until_done()
    assert second.events[0] == "thread.run.step.completed"
    assert second.events[1:3] == ["thread.run.queued", "thread.run.in_progress"]
    assert second.events[-1] == "thread.run.completed"
    assert "".join(second.deltas) == "Tool results: sunny"


async def test_create_and_run_stream(client: openai.AsyncOpenAI) -> None:
    assistant_id = await _assistant(client)
    handler = Recorder()
    async with client.beta.threads.create_and_run_stream(
        assistant_id=assistant_id, event_handler=handler,
        thread={"messages": [{"role": "user", "content": "[[reply:streamed hello]]"}]},
    ) as stream:
        await stream.until_done()
    assert handler.events[0] == "thread.created"
    assert "".join(handler.deltas) == "streamed hello"
    assert (await stream.get_final_run()).status == "completed"


def _parse_sse(raw: str) -> list[dict[str, str]]:
    frames = []
    for block in raw.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            frames.append(fields)
    return frames


async def test_raw_sse_framing_ids_and_payload_shapes(http: httpx.AsyncClient) -> None:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    async with http.stream("POST", "/v1/threads/runs", headers={"accept": "application/json"},
                           json={"assistant_id": assistant["id"], "stream": True, "thread": {
                               "messages": [{"role": "user", "content": "[[reply:a b c]]"}]}},
                           ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = (await response.aread()).decode()
    frames = _parse_sse(raw)
    assert frames[-1] == {"event": "done", "data": "[DONE]"}
    body = frames[:-1]
    assert all(f["id"] for f in body)  # every event is resumable
    ids = [tuple(map(int, f["id"].split("-"))) for f in body]
    assert ids == sorted(ids)
    by_event = {f["event"]: json.loads(f["data"]) for f in body}
    Message.model_validate(by_event["thread.message.completed"])
    assert by_event["thread.message.created"]["content"] == []
    MessageDelta.model_validate(by_event["thread.message.delta"]["delta"])
    assert by_event["thread.run.completed"]["status"] == "completed"


async def test_reconnect_with_last_event_id_replays_what_was_missed(
    http: httpx.AsyncClient,
) -> None:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    run = (await http.post("/v1/threads/runs", json={
        "assistant_id": assistant["id"], "thread": {"messages": [
            {"role": "user", "content": "[[tokens:20]] [[tokendelay:20]]"}]}})).json()
    url = f"/v1/threads/{run['thread_id']}/runs/{run['id']}/events"
    # Read a few events, then "drop the connection".
    seen: list[dict[str, str]] = []
    async with http.stream("GET", url) as response:
        buffer = ""
        async for chunk in response.aiter_text():
            buffer += chunk
            seen = _parse_sse(buffer.rsplit("\n\n", 1)[0])
            if len(seen) >= 6:
                break
    first_part = seen[:6]
    resumed = await http.get(url, headers={"Last-Event-ID": first_part[-1]["id"]})
    rest = _parse_sse(resumed.text)
    assert rest[-1]["event"] == "done"
    everything = first_part + rest[:-1]
    full = _parse_sse((await http.get(url)).text)[:-1]
    assert [f["id"] for f in everything] == [f["id"] for f in full]  # nothing lost or repeated
    text = "".join(json.loads(f["data"])["delta"]["content"][0]["text"]["value"]
                   for f in everything if f["event"] == "thread.message.delta")
    assert text == " ".join(f"w{i}" for i in range(1, 21))
    also = await http.get(url, params={"starting_after": first_part[-1]["id"]})
    assert [f.get("id") for f in _parse_sse(also.text)] == [f.get("id") for f in rest]


async def test_a_second_api_process_serves_the_stream(
    http: httpx.AsyncClient, stack_env: dict[str, str], fake_llm: FakeLLM, tmp_path: Any
) -> None:
    port = free_port()
    env = {**stack_env, "MODEL_URL": fake_llm.base_url}
    other = ChildProcess("api-2", [sys.executable, "-m", "launcher.cli", "api", "--port",
                                   str(port)], tmp_path / "api-2.log", env=env, cwd=tmp_path)
    try:
        other.wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200)
        marker = uuid.uuid4().hex
        assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
        run = (await http.post("/v1/threads/runs", json={
            "assistant_id": assistant["id"], "thread": {"messages": [
                {"role": "user", "content": f"[[reply:from elsewhere {marker}]]"}]}})).json()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as remote:
            response = await remote.get(
                f"/v1/threads/{run['thread_id']}/runs/{run['id']}/events", timeout=30)
        frames = _parse_sse(response.text)
        assert frames[-2]["event"] == "thread.run.completed"
        text = "".join(json.loads(f["data"])["delta"]["content"][0]["text"]["value"]
                       for f in frames if f["event"] == "thread.message.delta")
        assert text == f"from elsewhere {marker}"
    finally:
        other.stop()


async def test_unknown_event_id_format_is_a_400(http: httpx.AsyncClient) -> None:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    run = (await http.post("/v1/threads/runs", json={
        "assistant_id": assistant["id"], "thread": {"messages": [
            {"role": "user", "content": "[[reply:x]]"}]}})).json()
    response = await http.get(f"/v1/threads/{run['thread_id']}/runs/{run['id']}/events",
                              params={"starting_after": "nonsense"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "starting_after"


async def _stream_text_run(client: openai.AsyncOpenAI, text: str) -> tuple[Recorder, Any, str]:
    assistant_id = await _assistant(client)
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": text}])
    handler = Recorder()
    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        await stream.until_done()
    stored = (await client.beta.threads.messages.list(thread_id=thread.id)).data
    assert [m.role for m in stored] == ["assistant", "user"]  # one assistant message, ever
    return handler, stream, stored[0].content[0].text.value  # type: ignore[union-attr]


async def test_a_retry_after_a_partial_stream_does_not_duplicate_text(
    client: openai.AsyncOpenAI,
) -> None:
    handler, stream, stored = await _stream_text_run(
        client, f"[[reply:one two three four five six]] [[truncate:1]] {uuid.uuid4().hex}")
    assert (await stream.get_final_run()).status == "completed"
    # The first attempt died after a few words; the retry streamed only the rest.
    assert "".join(handler.deltas) == stored == "one two three four five six"
    assert handler.events.count("thread.message.created") == 1


async def test_a_diverging_retry_ends_with_the_authoritative_message(
    client: openai.AsyncOpenAI,
) -> None:
    handler, stream, stored = await _stream_text_run(
        client, "[[reply_per_attempt:alpha beta gamma delta|omega psi chi]] [[truncate:1]] "
        + uuid.uuid4().hex)
    assert stored == "omega psi chi"
    # Deltas stopped at the divergence; message.completed replaced the SDK's snapshot.
    assert "".join(handler.deltas).startswith("alpha")
    final = await stream.get_final_messages()
    assert final[0].content[0].text.value == stored
