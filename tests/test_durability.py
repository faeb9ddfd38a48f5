"""Durability: a worker process killed with SIGKILL loses nothing and duplicates nothing.

These runs go to a dedicated task queue served only by worker *processes* started here,
so the in-process `worker` fixture (default task queue) never touches them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.beta.threads import Run

from api.app import create_app
from core.settings import Settings
from launcher.processes import ChildProcess
from tests.fake_llm import FakeLLM

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
READY_LINE = "worker polling task queue"

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "getCurrentWeather",
        "description": "Get the weather in location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]},
    },
}


class Workers:
    """Worker processes (`python -m launcher.cli worker`) polling one dedicated queue."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.started: list[ChildProcess] = []

    async def start(self) -> ChildProcess:
        n = len(self.started) + 1
        # cwd=tmp_path: no stray .env file is read; the package is installed (editable).
        proc = ChildProcess(f"worker-{n}", [sys.executable, "-m", "launcher.cli", "worker"],
                            self.tmp_path / f"worker-{n}.log", env=self.env, cwd=self.tmp_path)
        self.started.append(proc)
        await wait_for(lambda: READY_LINE in proc.log_path.read_text(errors="replace"),
                       60, f"{proc.name} to start polling", self)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.log_tail(40)}" for p in self.started)

    async def stop_all(self) -> None:
        for proc in self.started:
            await asyncio.to_thread(proc.stop)  # no-op (just closes the log) once killed


async def wait_for(predicate: Callable[[], Any], seconds: float, what: str,
                   workers: Workers | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except OSError:  # e.g. the log file is not there yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}\n"
                         f"{workers.logs() if workers else ''}")


async def poll_run(sdk: openai.AsyncOpenAI, thread_id: str, run_id: str, until: set[str],
                   seconds: float, workers: Workers) -> Run:
    deadline = time.monotonic() + seconds
    while True:
        run = await sdk.beta.threads.runs.retrieve(run_id=run_id, thread_id=thread_id)
        if run.status in until:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status!r} after {seconds}s\n"
                                 f"{workers.logs()}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def queue() -> str:
    return f"durability-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def sdk(settings: Settings, queue: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """An API of its own whose runs are started on the dedicated queue."""
    app = create_app(settings.model_copy(update={"temporal_task_queue": queue}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield openai.AsyncOpenAI(base_url="http://testserver/v1", api_key="test-key",
                                 http_client=http, max_retries=0)


@pytest.fixture
async def workers(tmp_path: Path, stack_env: dict[str, str], fake_llm: FakeLLM,
                  settings: Settings, queue: str) -> AsyncIterator[Workers]:
    env = {
        **stack_env,
        "TEMPORAL_TASK_QUEUE": queue,
        "MODEL_URL": fake_llm.base_url,
        "MODEL_API_KEY": "k",
        "LLM_RETRY_INITIAL_SECONDS": "0.2",
        "TEMPORAL_SEARCH_ATTRIBUTES": stack_env.get(
            "TEMPORAL_SEARCH_ATTRIBUTES", str(settings.temporal_search_attributes).lower()),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    }
    group = Workers(tmp_path, env)
    try:
        yield group
    finally:
        await group.stop_all()


async def test_sigkill_during_llm_call_loses_and_duplicates_nothing(
    sdk: openai.AsyncOpenAI, workers: Workers, fake_llm: FakeLLM
) -> None:
    marker = f"durable-{uuid.uuid4().hex}"
    worker1 = await workers.start()
    assistant = await sdk.beta.assistants.create(model="fake-model")
    thread = await sdk.beta.threads.create(
        messages=[{"role": "user", "content": f"{marker} [[delay:3]] [[reply:survived]]"}])
    run = await sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    # Worker #1 is inside the model call: the fake LLM holds the answer for 3 s.
    await wait_for(lambda: fake_llm.requests_containing(marker), 30,
                   "worker #1 to call the model", workers)
    worker1.kill()
    assert worker1.process.returncode == -9
    assert len(fake_llm.requests_containing(marker)) == 1
    current = await sdk.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)
    assert current.status == "in_progress"
    messages = await sdk.beta.threads.messages.list(thread_id=thread.id)
    assert [m.role for m in messages.data] == ["user"]

    await workers.start()
    # Nobody tells Temporal the attempt died: the model_turn activity's heartbeat
    # timeout (15 s, RetrySettings.heartbeat_timeout_seconds) must expire first; then
    # the retry (0.2 s later) is picked up by worker #2, plus its own 3 s model call.
    done = await poll_run(sdk, thread.id, run.id, TERMINAL, 60, workers)
    assert done.status == "completed", (done.last_error, workers.logs())

    messages = await sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assistant_messages = [m for m in messages.data if m.role == "assistant"]
    assert len(assistant_messages) == 1, [m.content for m in assistant_messages]
    assert assistant_messages[0].content[0].text.value == "survived"  # type: ignore[union-attr]
    assert assistant_messages[0].run_id == run.id

    steps = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert [(s.type, s.status) for s in steps.data] == [("message_creation", "completed")]
    assert (steps.data[0].step_details.message_creation.message_id  # type: ignore[union-attr]
            == assistant_messages[0].id)

    # The call really was interrupted and made again.
    assert len(fake_llm.requests_containing(marker)) >= 2


async def test_sigkill_while_waiting_for_tool_outputs(
    sdk: openai.AsyncOpenAI, workers: Workers, fake_llm: FakeLLM
) -> None:
    marker = f"durable-tools-{uuid.uuid4().hex}"
    worker1 = await workers.start()
    assistant = await sdk.beta.assistants.create(model="fake-model", tools=[WEATHER_TOOL])
    content = (f'{marker} [[call:getCurrentWeather {{"location": "Paris"}}]] '
               "[[after_tool:survived with tools]]")
    thread = await sdk.beta.threads.create(messages=[{"role": "user", "content": content}])
    run = await sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    waiting = await poll_run(sdk, thread.id, run.id, {"requires_action"} | TERMINAL, 30, workers)
    assert waiting.status == "requires_action", (waiting.last_error, workers.logs())
    assert waiting.required_action is not None
    calls = waiting.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1 and json.loads(calls[0].function.arguments) == {"location": "Paris"}

    worker1.kill()
    assert worker1.process.returncode == -9
    # The update needs a worker to run it: worker #2 serves it (after replaying the history).
    await workers.start()
    submitted = await sdk.beta.threads.runs.submit_tool_outputs(
        run_id=run.id, thread_id=thread.id,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "18C and cloudy"}])
    assert submitted.status in {"queued", "in_progress", "completed"}

    done = await poll_run(sdk, thread.id, run.id, TERMINAL, 60, workers)
    assert done.status == "completed", (done.last_error, workers.logs())

    messages = await sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assistant_messages = [m for m in messages.data if m.role == "assistant"]
    assert len(assistant_messages) == 1, [m.content for m in assistant_messages]
    assert (assistant_messages[0].content[0].text.value  # type: ignore[union-attr]
            == "survived with tools")

    steps = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id,
                                                   order="asc")
    assert [(s.type, s.status) for s in steps.data] == [
        ("tool_calls", "completed"), ("message_creation", "completed")]
    recorded = steps.data[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert recorded.id == calls[0].id
    assert recorded.function.output == "18C and cloudy"  # type: ignore[union-attr]

    # Nothing was interrupted here, so nothing was asked twice: one call per model turn.
    sent = fake_llm.requests_containing(marker)
    assert len(sent) == 2, sent
    assert sent[1]["messages"][-1] == {"role": "tool", "content": "18C and cloudy",
                                       "tool_call_id": calls[0].id}
