"""Server outages on a private stack: the Temporal dev server killed and restarted, Postgres down.

The stack here is an EmbeddedStack of its own (Postgres and Temporal; Redis and S3 are the
session's, which nothing here disturbs), so other tests never see these outages. Each test has
an in-process API on that stack and worker processes (`python -m launcher.cli worker`).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from api.app import create_app
from core.settings import Settings
from tests.fake_llm import FakeLLM
from tests.faults.helpers import (
    TERMINAL,
    WEATHER_TOOL,
    PrivateStack,
    Workers,
    envelope_of,
    new_queue,
    poll_run,
    wait_for,
    worker_env,
)
from tests.sdk_client import sdk_over


@pytest.fixture(scope="module")
def private(stack_env: dict[str, str]) -> Iterator[PrivateStack]:
    borrowed = {k: v for k, v in stack_env.items()
                if k.startswith("S3_") or k == "REDIS_URL"}
    stack = PrivateStack(borrowed)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def queue() -> str:
    return new_queue("faults-outage")


@pytest.fixture
async def private_up(private: PrivateStack) -> PrivateStack:
    """The private stack with every server running (a failed test may have left one down)."""
    for name in ("postgres", "temporal"):
        if not private.proc(name).running():
            private.proc(name).stop()
            await private.restart(name)
    return private


@pytest.fixture
def private_settings(settings: Settings, private_up: PrivateStack, queue: str) -> Settings:
    private = private_up
    # The product's default retry schedule (1 s, x2, 6 attempts: ~30 s) rides out a short
    # outage; the session's quick test schedule (0.2 s, 3 attempts) is meant to give up fast.
    return settings.model_copy(update={
        "database_url": private.env["DATABASE_URL"],
        "temporal_address": private.env["TEMPORAL_ADDRESS"],
        "temporal_search_attributes": True,
        "temporal_task_queue": queue,
        "llm_retry_initial_seconds": 1.0, "llm_retry_max_attempts": 6,
    })


@pytest.fixture
async def http(private_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(private_settings)
    # raise_app_exceptions=False: see exactly what a client of uvicorn would get.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="http://testserver", timeout=60) as client:
        yield client


@pytest.fixture
def sdk(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return sdk_over(http)


@pytest.fixture
async def workers(tmp_path: Path, private_up: PrivateStack, fake_llm: FakeLLM, settings: Settings,
                  queue: str) -> AsyncIterator[Workers]:
    env = worker_env({**private_up.env, "TEMPORAL_SEARCH_ATTRIBUTES": "true"}, fake_llm, settings,
                     queue)
    group = Workers(tmp_path, env)
    try:
        yield group
    finally:
        await group.stop_all()


async def _create_and_run(sdk: openai.AsyncOpenAI, assistant_id: str, content: str) -> tuple[
        str, str]:
    run = await sdk.beta.threads.create_and_run(
        assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": content}]})
    return run.thread_id, run.id


async def _assert_answered_once(sdk: openai.AsyncOpenAI, thread_id: str, run_id: str,
                                text: str) -> None:
    messages = await sdk.beta.threads.messages.list(thread_id=thread_id)
    replies = [m for m in messages.data if m.role == "assistant"]
    assert len(replies) == 1, (run_id, [m.content for m in replies])
    assert replies[0].content[0].text.value == text  # type: ignore[union-attr]
    steps = await sdk.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id)
    kinds = [s.type for s in steps.data]
    assert kinds.count("message_creation") == 1, kinds
    assert all(s.status == "completed" for s in steps.data)


async def test_temporal_killed_and_restarted_with_runs_queued_running_and_waiting(
    private: PrivateStack, sdk: openai.AsyncOpenAI, http: httpx.AsyncClient, workers: Workers,
    fake_llm: FakeLLM,
) -> None:
    tag = uuid.uuid4().hex[:8]
    worker1 = await workers.start()
    assistant = await sdk.beta.assistants.create(model="fake-model", tools=[WEATHER_TOOL])

    # requires_action: waiting for tool outputs when Temporal dies.
    waiting = await _create_and_run(
        sdk, assistant.id,
        f'waiting-{tag} [[call:getCurrentWeather {{"location": "Oslo"}}]] [[after_tool:oslo ok]]')
    run = await poll_run(sdk, *waiting, {"requires_action"} | TERMINAL, 30, workers)
    assert run.status == "requires_action", (run.last_error, workers.logs())
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id  # type: ignore[union-attr]
    # in_progress: inside the model call when Temporal dies.
    running = await _create_and_run(sdk, assistant.id, f"running-{tag} [[delay:4]] "
                                                      "[[reply:running ok]]")
    await wait_for(lambda: fake_llm.requests_containing(f"running-{tag}"), 30,
                   "the model call", workers)
    # queued: started a moment before the kill, before any worker could move them.
    queued = await asyncio.gather(*(_create_and_run(sdk, assistant.id,
                                                    f"queued-{tag}-{i} [[reply:queued ok]]")
                                    for i in range(3)))
    private.proc("temporal").kill()
    assert private.proc("temporal").process.returncode == -9
    at_kill = [(await sdk.beta.threads.runs.retrieve(run_id=r, thread_id=t)).status
               for t, r in queued]
    # Usually still queued; a quick worker may have finished one already.
    assert set(at_kill) <= {"queued", "in_progress", "completed"}, at_kill

    # While Temporal is down, reads (Postgres only) still work.
    response = await http.get(f"/v1/threads/{waiting[0]}/runs/{waiting[1]}")
    assert response.status_code == 200 and response.json()["status"] == "requires_action"

    await asyncio.sleep(2)
    await private.restart("temporal")  # same port, same SQLite file

    # Do workers reconnect by themselves? Worker #1 never restarted: if the runs finish,
    # it did (the API's lazy client reconnects on its own too: the submit goes through it).
    assert worker1.running(), workers.logs()
    submitted = await sdk.beta.threads.runs.submit_tool_outputs(
        run_id=waiting[1], thread_id=waiting[0],
        tool_outputs=[{"tool_call_id": call_id, "output": "cold"}])
    assert submitted.status in {"queued", "in_progress", "completed"}

    everything = [waiting, running, *queued]
    finals = await asyncio.gather(*(poll_run(sdk, t, r, TERMINAL, 60, workers)
                                    for t, r in everything))
    assert [f.status for f in finals] == ["completed"] * len(everything), (
        [(f.id, f.status, f.last_error) for f in finals], workers.logs())
    assert len(workers.started) == 1  # worker #1 did it all, after reconnecting
    await _assert_answered_once(sdk, *waiting, "oslo ok")
    await _assert_answered_once(sdk, *running, "running ok")
    for thread_id, run_id in queued:
        await _assert_answered_once(sdk, thread_id, run_id, "queued ok")


async def _expect_503(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.method, response.request.url,
                                         response.status_code, response.text[:500])
    error = envelope_of(response)
    assert error["type"] == "server_error" and error["code"] == "service_unavailable", error
    assert "Traceback" not in response.text


async def test_postgres_down_for_seconds_503s_then_every_run_finishes(
    private: PrivateStack, sdk: openai.AsyncOpenAI, http: httpx.AsyncClient, workers: Workers,
    fake_llm: FakeLLM,
) -> None:
    tag = uuid.uuid4().hex[:8]
    await workers.start()
    assistant = await sdk.beta.assistants.create(model="fake-model", tools=[WEATHER_TOOL])
    waiting = await _create_and_run(
        sdk, assistant.id,
        f'pgwait-{tag} [[call:getCurrentWeather {{"location": "Rome"}}]] [[after_tool:rome ok]]')
    run = await poll_run(sdk, *waiting, {"requires_action"} | TERMINAL, 30, workers)
    assert run.status == "requires_action", (run.last_error, workers.logs())
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id  # type: ignore[union-attr]
    markers = [f"pgrun-{tag}-{i}" for i in range(3)]
    running = await asyncio.gather(*(
        _create_and_run(sdk, assistant.id, f"{m} [[delay:2]] [[reply:{m} ok]]") for m in markers))
    await wait_for(lambda: all(fake_llm.requests_containing(m) for m in markers), 30,
                   "the model calls", workers)

    # Postgres goes away (SIGQUIT: immediate shutdown, crash recovery at the next start);
    # the model answers arrive during the outage.
    postgres = private.proc("postgres")
    postgres.process.send_signal(signal.SIGQUIT)
    await asyncio.to_thread(postgres.process.wait, 30)
    postgres.stop()  # closes its log
    down_since = time.monotonic()

    thread_id, run_id = running[0]
    requests = [
        ("GET", f"/v1/assistants/{assistant.id}", None),
        ("GET", "/v1/assistants", None),
        ("POST", "/v1/assistants", {"model": "fake-model"}),
        ("GET", f"/v1/threads/{thread_id}/runs/{run_id}", None),
        ("GET", f"/v1/threads/{thread_id}/messages", None),
        ("POST", "/v1/threads/runs", {"assistant_id": assistant.id}),
        ("POST", f"/v1/threads/{waiting[0]}/runs/{waiting[1]}/submit_tool_outputs",
         {"tool_outputs": [{"tool_call_id": call_id, "output": "warm"}]}),
        ("GET", f"/v1/threads/{thread_id}/runs/{run_id}/events", None),
    ]
    for method, path, body in requests:
        await _expect_503(await http.request(method, path, json=body))
    health = await http.get("/health")
    assert health.status_code == 503 and health.json()["components"]["database"] != "ok"

    await asyncio.sleep(max(0.0, 5 - (time.monotonic() - down_since)))
    await private.restart("postgres")  # same port, same data dir
    submitted = await sdk.beta.threads.runs.submit_tool_outputs(
        run_id=waiting[1], thread_id=waiting[0],
        tool_outputs=[{"tool_call_id": call_id, "output": "warm"}])
    assert submitted.status in {"queued", "in_progress", "completed"}
    everything = [waiting, *running]
    finals = await asyncio.gather(*(poll_run(sdk, t, r, TERMINAL, 90, workers)
                                    for t, r in everything))
    assert [f.status for f in finals] == ["completed"] * len(everything), (
        [(f.id, f.status, f.last_error) for f in finals], workers.logs())
    await _assert_answered_once(sdk, *waiting, "rome ok")
    for (t, r), m in zip(running, markers, strict=True):
        await _assert_answered_once(sdk, t, r, f"{m} ok")
    # The answers that came back during the outage could not be recorded: the model turn
    # was retried (and the model asked again) once Postgres was back.
    assert all(len(fake_llm.requests_containing(m)) >= 2 for m in markers), [
        len(fake_llm.requests_containing(m)) for m in markers]
    # The failed submission during the outage changed nothing: the one after it counted.
    steps = await sdk.beta.threads.runs.steps.list(run_id=waiting[1], thread_id=waiting[0],
                                                   order="asc")
    details = json.loads(steps.data[0].step_details.model_dump_json())
    assert details["tool_calls"][0]["function"]["output"] == "warm"
