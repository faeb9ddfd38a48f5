"""Issue #5, the remaining bullets: file_search tool_choice, image content parts and the
message object's status fields, checked by what the model received and what the SDK reads back.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
from typing import Any

import openai
import pytest
from openai import AsyncAssistantEventHandler
from openai.types.beta.thread_create_params import MessageAttachment
from openai.types.beta.threads import Message, Run, Text, TextDelta

from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.usefixtures("worker")

IMAGE_URL = "https://example.com/cat.png"
# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


async def _run(client: openai.AsyncOpenAI, fake_llm: FakeLLM, content: str | list[Any],
               tools: list[dict[str, Any]] | None = None,
               **params: Any) -> tuple[Run, list[dict[str, Any]], str]:
    """Run one user message to a stop; return the run, what the model received, the marker.

    `content` is tagged with a unique marker: appended to a string, or to the first text part.
    """
    marker = uuid.uuid4().hex
    if isinstance(content, str):
        content = f"{content} <{marker}>"
    else:
        content = [dict(part) for part in content]
        first_text = next(p for p in content if p["type"] == "text")
        first_text["text"] = f"{first_text['text']} <{marker}>"
    assistant = await client.beta.assistants.create(
        model="fake-model", instructions="Base instructions.", tools=tools or [])  # type: ignore[arg-type]
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": content}])
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50, **params)
    return run, fake_llm.requests_containing(marker), marker


def _tool_names(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


# --- tool_choice: {"type": "file_search"} ---------------------------------------------------

async def test_file_search_tool_choice_forces_the_file_search_function(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    run, requests, _ = await _run(
        client, fake_llm, '[[call:file_search {"query": "anything"}]]',
        [{"type": "file_search"}], tool_choice={"type": "file_search"})
    first = requests[0]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}
    assert "file_search" in _tool_names(first)
    spec = next(t for t in first["tools"] if t["function"]["name"] == "file_search")
    assert spec["type"] == "function" and "query" in spec["function"]["parameters"]["properties"]
    # Read back as given, and the forced call is answered server-side (no requires_action).
    assert run.tool_choice.type == "file_search"  # type: ignore[union-attr]
    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id,
                                                      order="asc")
    assert steps.data[0].step_details.tool_calls[0].type == "file_search"  # type: ignore[union-attr]


async def test_file_search_tool_choice_run_completes_after_the_search(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    """The forced call is made on the first turn; the model then answers with text."""
    run, requests, _ = await _run(
        client, fake_llm, '[[call:file_search {"query": "anything"}]]',
        [{"type": "file_search"}], tool_choice={"type": "file_search"})
    assert run.status == "completed", (run.status, run.last_error, len(requests))
    # The turn after the search reads the tool's result and is not forced to search again.
    assert requests[-1]["messages"][-1]["role"] == "tool"
    assert requests[-1].get("tool_choice") in (None, "auto")


# --- image_url content parts ----------------------------------------------------------------

async def test_image_url_parts_reach_the_model_and_read_back(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    run, requests, marker = await _run(client, fake_llm, [
        {"type": "text", "text": "[[reply:a cat]] What is this?"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "high"}},
    ])
    assert run.status == "completed"
    [user] = [m for m in requests[0]["messages"] if m["role"] == "user"]
    assert user["content"] == [
        {"type": "text", "text": f"[[reply:a cat]] What is this? <{marker}>"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "high"}},
    ]
    messages = await client.beta.threads.messages.list(thread_id=run.thread_id, order="asc")
    question, answer = messages.data
    assert [p.type for p in question.content] == ["text", "image_url"]
    assert question.content[0].text.value == f"[[reply:a cat]] What is this? <{marker}>"  # type: ignore[union-attr]
    assert question.content[1].image_url.url == IMAGE_URL  # type: ignore[union-attr]
    assert question.content[1].image_url.detail == "high"  # type: ignore[union-attr]
    assert answer.content[0].text.value == "a cat"  # type: ignore[union-attr]


async def test_image_url_detail_defaults_to_auto_for_the_model(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    _, requests, _ = await _run(client, fake_llm, [
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        {"type": "text", "text": "[[reply:ok]]"},
    ])
    [user] = [m for m in requests[0]["messages"] if m["role"] == "user"]
    images = [p for p in user["content"] if p["type"] == "image_url"]
    assert images == [{"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "auto"}}]


# --- image_file content parts ---------------------------------------------------------------

async def test_image_file_parts_reach_the_model_as_data_urls(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    upload = await client.files.create(file=("pixel.png", io.BytesIO(PNG)), purpose="vision")
    run, requests, _ = await _run(client, fake_llm, [
        {"type": "text", "text": "[[reply:a pixel]] What is this?"},
        {"type": "image_file", "image_file": {"file_id": upload.id, "detail": "low"}},
    ])
    assert run.status == "completed"
    question = (await client.beta.threads.messages.list(thread_id=run.thread_id,
                                                         order="asc")).data[0]
    assert [p.type for p in question.content] == ["text", "image_file"]  # stored as given
    [user] = [m for m in requests[0]["messages"] if m["role"] == "user"]
    assert isinstance(user["content"], list), user["content"]
    images = [p for p in user["content"] if p["type"] == "image_url"]
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert images == [{"type": "image_url", "image_url": {"url": data_url, "detail": "low"}}]


# --- message objects ------------------------------------------------------------------------

async def test_user_messages_read_back_completed_with_their_attachments(
    client: openai.AsyncOpenAI,
) -> None:
    upload = await client.files.create(file=("notes.txt", io.BytesIO(b"some notes")),
                                       purpose="assistants")
    attachments: list[MessageAttachment] = [{"file_id": upload.id, "tools": [{"type": "file_search"}]}]
    before = int(time.time())
    thread = await client.beta.threads.create(messages=[
        {"role": "user", "content": "from thread create", "attachments": attachments}])
    await client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="from messages create",
        attachments=attachments)
    await client.beta.threads.messages.create(thread_id=thread.id, role="user",
                                              content="no attachments")
    listed = (await client.beta.threads.messages.list(thread_id=thread.id, order="asc")).data
    assert [m.content[0].text.value for m in listed] == [  # type: ignore[union-attr]
        "from thread create", "from messages create", "no attachments"]
    for message in listed:
        again = await client.beta.threads.messages.retrieve(message_id=message.id,
                                                            thread_id=thread.id)
        for m in (message, again):
            assert m.status == "completed"
            assert m.completed_at is not None and m.completed_at >= before
            assert m.incomplete_at is None and m.incomplete_details is None
            assert m.role == "user" and m.run_id is None and m.assistant_id is None
    for m in listed[:2]:
        assert [a.model_dump(exclude_none=True) for a in m.attachments or []] == attachments
    assert listed[2].attachments == []


class _Deltas(AsyncAssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []
        self.first_delta = asyncio.Event()
        self.run_id: str | None = None

    async def on_event(self, event: Any) -> None:
        self.events.append(event.event)
        if event.event == "thread.run.created":
            self.run_id = event.data.id

    async def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")
        if len(self.deltas) >= 3:
            self.first_delta.set()


async def _cancel_mid_stream(base_url: str) -> tuple[_Deltas, Run, Message]:
    """Stream a slow answer, cancel the run once the first deltas arrived; return what the
    stream handler saw, the run, and its (assistant) message as read back afterwards."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    assistant = await client.beta.assistants.create(model="fake-model")
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": "[[tokens:200]] [[tokendelay:50]]"}])
    handler = _Deltas()

    async def consume() -> None:
        async with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
        ) as stream:
            await stream.until_done()

    consumer = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(30):
            await handler.first_delta.wait()
        assert handler.run_id is not None
        cancelling = await client.beta.threads.runs.cancel(run_id=handler.run_id,
                                                           thread_id=thread.id)
        assert cancelling.status in ("cancelling", "cancelled")
        async with asyncio.timeout(30):
            await consumer
    finally:
        consumer.cancel()
    run = await client.beta.threads.runs.retrieve(run_id=handler.run_id, thread_id=thread.id)
    [message] = (await client.beta.threads.messages.list(thread_id=thread.id,
                                                         run_id=run.id)).data
    return handler, run, message


async def test_cancelled_run_leaves_its_message_incomplete(live_server_url: str,
                                                           base_path: str) -> None:
    """Cancelled while the model streams, after the first deltas reached the client."""
    handler, run, message = await _cancel_mid_stream(live_server_url + base_path)
    assert run.status == "cancelled" and run.cancelled_at is not None
    assert handler.events[-1] == "thread.run.cancelled"
    assert 3 <= len(handler.deltas) < 200  # cut short, not run to the end
    assert message.role == "assistant"
    assert message.status == "incomplete"
    assert message.incomplete_details is not None
    assert message.incomplete_details.reason == "run_cancelled"
    assert message.incomplete_at is not None and message.completed_at is None


async def test_cancelled_message_keeps_the_text_streamed_before_the_cancel(
    live_server_url: str, base_path: str
) -> None:
    handler, _, message = await _cancel_mid_stream(live_server_url + base_path)
    streamed = "".join(handler.deltas)
    assert streamed.startswith("w1 w2 w3")
    assert [p.type for p in message.content] == ["text"]
    # At least what the client saw (deltas in flight at the cancel may add a little).
    assert message.content[0].text.value.startswith(streamed)  # type: ignore[union-attr]
