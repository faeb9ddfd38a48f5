"""Shared pieces of the long-silence and Redis-restart streaming tests.

An API app of their own (short keep-alive interval) served over real HTTP, a worker of
their own on its own task queue, SSE read as it arrives, each SDK's stream recorded the same
way, and the checks that a stream delivered every event of its run exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import uvicorn
from openai import AsyncAssistantEventHandler
from openai.types.beta.threads import Text, TextDelta

from api.app import create_app
from core.settings import Settings
from worker import run_worker

TOOL: Any = {"type": "function", "function": {"name": "getCurrentWeather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}
RUN_ENDS = {"thread.run.requires_action", "thread.run.completed", "thread.run.failed",
            "thread.run.cancelled", "thread.run.expired", "thread.run.incomplete"}


def own_settings(settings: Settings, **changes: Any) -> Settings:
    """The session's settings with a task queue of their own (so only our worker runs these
    runs) and a model timeout well above the tests' silences (the session's is 30 s)."""
    return settings.model_copy(update={
        "temporal_task_queue": f"stream-silence-{uuid.uuid4().hex[:10]}",
        "llm_timeout_seconds": 120.0, **changes})


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """An app of its own built from `settings`, over real HTTP (streams arrive as sent), and
    a worker serving its task queue, both in this process."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    try:
        async with app.router.lifespan_context(app):
            task = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                async with asyncio.timeout(30):
                    while not server.started:
                        if task.done():
                            task.result()
                        await asyncio.sleep(0.02)
                yield f"http://127.0.0.1:{sock.getsockname()[1]}"
            finally:
                server.should_exit = True
                await task
    finally:
        sock.close()
        stop.set()
        await worker


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="test-key", max_retries=0)


@dataclass
class RawStream:
    """What a raw SSE response carried: its frames, its comments, and the longest time
    between two writes."""

    frames: list[dict[str, str]] = field(default_factory=list)
    keepalives: int = 0
    longest_gap: float = 0.0


async def read_sse(response: httpx.Response, until: Callable[[RawStream], bool] | None = None,
                   linger: float = 0.0) -> RawStream:
    """Read SSE blocks as they come: all of them, or until `until` holds and then `linger`
    seconds more (a client that drops the connection in the middle of a silence)."""
    out, buffer, last = RawStream(), "", time.monotonic()
    fields: dict[str, str] = {}
    deadline: float | None = None
    chunks = aiter(response.aiter_text())
    while True:
        try:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            chunk = await asyncio.wait_for(anext(chunks), wait)
        except (StopAsyncIteration, TimeoutError):
            return out
        now = time.monotonic()
        out.longest_gap, last = max(out.longest_gap, now - last), now
        *lines, buffer = (buffer + chunk).split("\n")
        for line in lines:  # SSE: fields until a blank line; comments anywhere
            if line.startswith(":"):
                out.keepalives += line == ": keep-alive"
            elif line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif fields:
                out.frames.append(fields)
                fields = {}
        if until is not None and deadline is None and until(out):
            if not linger:
                return out
            deadline = now + linger


async def replay(http: httpx.AsyncClient, thread_id: str, run_id: str) -> list[dict[str, str]]:
    """Every event the run published, in order (the `/events` endpoint stops at each
    end of a stream, e.g. requires_action, so read on until the run's end)."""
    frames: list[dict[str, str]] = []
    while not frames or frames[-1]["event"] not in RUN_ENDS - {"thread.run.requires_action"}:
        headers = {"Last-Event-ID": frames[-1]["id"]} if frames else {}
        async with http.stream("GET", f"/v1/threads/{thread_id}/runs/{run_id}/events",
                               headers=headers, timeout=120) as response:
            got = (await read_sse(response)).frames
        assert got[-1]["event"] == "done", got
        frames += got[:-1]
    return frames


def legs_of(frames: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """A run's events split the way its streams deliver them: each stream ends with the
    event that needs the client (requires_action) or ends the run."""
    legs: list[list[dict[str, str]]] = [[]]
    for frame in frames:
        legs[-1].append(frame)
        if frame["event"] in RUN_ENDS:
            legs.append([])
    return [leg for leg in legs if leg]


class Recorder(AsyncAssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []
        self.thread_id = ""

    async def on_event(self, event: Any) -> None:
        self.events.append(event.event)

    async def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")


async def leg(stream: Any, handler: Recorder | None = None) -> dict[str, Any]:
    """One Python SDK stream, recorded as tests/js/silence_flow.mjs records a Node one
    (by `handler`, if given: a test may watch it progress)."""
    handler = handler or Recorder()
    async with stream(handler) as manager:
        await manager.until_done()
    run = await manager.get_final_run()
    calls = run.required_action.submit_tool_outputs.tool_calls if run.required_action else []
    return {"events": handler.events, "deltas": handler.deltas, "run_id": run.id,
            "thread_id": run.thread_id, "run_status": run.status,
            "tool_calls": [{"id": c.id, "name": c.function.name,
                            "arguments": c.function.arguments} for c in calls]}


async def python_flow(client: openai.AsyncOpenAI, scenario: str,
                      content: str) -> list[dict[str, Any]]:
    """tests/js/silence_flow.mjs's scenarios, with the Python SDK's stream helpers."""
    assistant = await client.beta.assistants.create(model="fake-model", tools=[TOOL])
    messages: Any = [{"role": "user", "content": content}]
    runs = client.beta.threads.runs
    if scenario == "thread_and_run":
        return [await leg(lambda h: client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id, thread={"messages": messages}, event_handler=h))]
    thread = await client.beta.threads.create(messages=messages)
    first = await leg(lambda h: runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                            event_handler=h))
    if scenario == "run":
        return [first]
    outputs: Any = [{"tool_call_id": c["id"], "output": "sunny"} for c in first["tool_calls"]]
    assert outputs, first
    second = await leg(lambda h: runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=first["run_id"], tool_outputs=outputs, event_handler=h))
    return [first, second]


async def check_once(http: httpx.AsyncClient, legs: list[dict[str, Any]]) -> str:
    """Each SDK stream carried its part of the run's events exactly once, in order, and the
    run ended; returns the answer the streams' text deltas assembled to (checked against
    the stored message)."""
    thread_id, run_id = legs[0]["thread_id"], legs[0]["run_id"]
    published = legs_of(await replay(http, thread_id, run_id))
    assert [leg["events"] for leg in legs] == [[f["event"] for f in p] for p in published]
    assert legs[-1]["run_status"] == "completed", legs[-1]
    messages = (await http.get(f"/v1/threads/{thread_id}/messages")).json()["data"]
    answer: str = messages[0]["content"][0]["text"]["value"]
    assert "".join(legs[-1]["deltas"]) == answer
    return answer


def data(frame: dict[str, str]) -> Any:
    return json.loads(frame["data"])
