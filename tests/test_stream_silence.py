"""Streams stay open through long model silences (issue 19, part 1).

A model may think for minutes before its first token or pause between tokens. redis-py 8's
5 s default socket timeout against the relay's 5 s XREAD block ended every stream after 5 s
of silence with "The event stream failed". Here: the first token after 30 s, a 20 s pause
mid-answer, and a function call whose arguments come after 30 s (then a 30 s pause in the
answer after the tool outputs), each streamed by the Python SDK's helpers, the Node SDK's
and raw SSE, over create run, create thread and run, submit tool outputs and the `/events`
resume endpoint. Every stream must carry each event of its run exactly once (compared with
a replay of the run's events) and, raw, show keep-alive comments all through the silence.

The flows run concurrently (started together by the `flows` fixture, awaited by each test),
so the file costs about as long as its longest flow (~70 s). The API here is an app of the
test's own with a 2 s keep-alive interval, and its worker serves a queue of its own with a
model timeout above the silences. The Node flows need node and npm (as tests/test_node_sdk.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.events import RunEvents
from core.redis_client import MAX_BLOCK_SECONDS, create_redis
from core.settings import Settings
from tests.fake_llm import FakeLLM
from tests.stream_helpers import (
    TOOL,
    RawStream,
    check_once,
    data,
    legs_of,
    own_settings,
    python_flow,
    read_sse,
    replay,
    sdk,
    served,
)
from tests.test_node_sdk import node_sdk, run_node

__all__ = ["node_sdk"]  # a fixture, used by `flows`

KEEPALIVE = 2.0
SLACK = 3.0  # a loaded 2-core CI box may stall the event loop a little
CALL = '[[call:getCurrentWeather {"location": "Paris"}]]'
# scenario: (user message, the silence each of its streams sits through, the answer)
SCENARIOS: dict[str, tuple[str, float, str]] = {
    "run": ("[[pause:0:30000]] [[reply:worth the wait]]", 30, "worth the wait"),
    "thread_and_run": ("[[pause:3:20000]] [[tokens:6]]", 20, "w1 w2 w3 w4 w5 w6"),
    "function": (f"[[pause:1:30000]] {CALL}", 30, "Tool results: sunny"),
}
RESUME = "[[pause:3:20000]] [[tokens:6]]"
RESUME_LINGER = 7.0  # seconds the first /events connection stays open in the silence


async def _post_stream(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> RawStream:
    async with http.stream("POST", url, json={**body, "stream": True}) as response:
        assert response.status_code == 200, await response.aread()
        return await read_sse(response)


async def raw_flow(http: httpx.AsyncClient, scenario: str,
                   content: str) -> tuple[list[RawStream], str, str]:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model",
                                                         "tools": [TOOL]})).json()
    messages = [{"role": "user", "content": content}]
    if scenario == "thread_and_run":
        legs = [await _post_stream(http, "/v1/threads/runs", {
            "assistant_id": assistant["id"], "thread": {"messages": messages}})]
    else:
        thread = (await http.post("/v1/threads", json={"messages": messages})).json()
        legs = [await _post_stream(http, f"/v1/threads/{thread['id']}/runs",
                                   {"assistant_id": assistant["id"]})]
    if scenario == "function":
        run = data(legs[0].frames[-2])
        outputs = [{"tool_call_id": call["id"], "output": "sunny"}
                   for call in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
        legs.append(await _post_stream(
            http, f"/v1/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs",
            {"tool_outputs": outputs}))
    run = data(legs[-1].frames[-2])
    return legs, run["thread_id"], run["id"]


async def raw_resume(http: httpx.AsyncClient) -> tuple[RawStream, RawStream, str, str]:
    """`/events` read up to the silence, kept open in it a while, dropped, and resumed with
    Last-Event-ID while the model is still silent."""
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    run = (await http.post("/v1/threads/runs", json={"assistant_id": assistant["id"], "thread": {
        "messages": [{"role": "user", "content": RESUME}]}})).json()
    url = f"/v1/threads/{run['thread_id']}/runs/{run['id']}/events"

    def third_token(stream: RawStream) -> bool:
        return [f["event"] for f in stream.frames].count("thread.message.delta") == 3

    async with http.stream("GET", url) as response:
        before = await read_sse(response, until=third_token, linger=RESUME_LINGER)
    async with http.stream("GET", url, headers={"Last-Event-ID": before.frames[-1]["id"]}
                           ) as response:
        after = await read_sse(response)
    return before, after, run["thread_id"], run["id"]


@pytest.fixture(scope="module")
async def silent_api(settings: Settings) -> AsyncIterator[str]:
    async with served(own_settings(settings, stream_keepalive_seconds=KEEPALIVE)) as url:
        yield url


@pytest.fixture(scope="module")
async def api(silent_api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=silent_api, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
async def flows(silent_api: str, api: httpx.AsyncClient, node_sdk: str,
                settings: Settings) -> AsyncIterator[dict[str, asyncio.Future[Any]]]:
    """Every flow, started at once; each test awaits its own."""
    client = sdk(silent_api)
    redis_client = create_redis(settings.redis_url)
    coros: dict[str, Any] = {}
    for scenario, (content, _, _) in SCENARIOS.items():
        coros[f"python-{scenario}"] = python_flow(client, scenario, content)
        coros[f"node-{scenario}"] = run_node(node_sdk, "silence_flow.mjs", silent_api,
                                             scenario, content)
        coros[f"raw-{scenario}"] = raw_flow(api, scenario, content)
    coros["raw-resume"] = raw_resume(api)
    coros["quiet-read"] = RunEvents(redis_client).read(
        "run_never_streamed", "0-0", int(MAX_BLOCK_SECONDS * 1000))
    tasks = {name: asyncio.ensure_future(coro) for name, coro in coros.items()}
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await client.close()
        await redis_client.aclose()


def _check_tool_call(first_leg: dict[str, Any]) -> None:
    assert first_leg["run_status"] == "requires_action", first_leg
    [call] = first_leg["tool_calls"]
    assert call["name"] == "getCurrentWeather"
    assert json.loads(call["arguments"]) == {"location": "Paris"}


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_python_sdk_stream_helpers_ride_out_the_silence(
        flows: dict[str, asyncio.Future[Any]], api: httpx.AsyncClient, scenario: str) -> None:
    legs = await flows[f"python-{scenario}"]
    assert await check_once(api, legs) == SCENARIOS[scenario][2]
    if scenario == "function":
        _check_tool_call(legs[0])


@pytest.mark.node
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_node_sdk_stream_helpers_ride_out_the_silence(
        flows: dict[str, asyncio.Future[Any]], api: httpx.AsyncClient, scenario: str) -> None:
    legs = (await flows[f"node-{scenario}"])["legs"]
    assert await check_once(api, legs) == SCENARIOS[scenario][2]
    if scenario == "function":
        _check_tool_call(legs[0])


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_raw_sse_keeps_alive_through_the_silence(
        flows: dict[str, asyncio.Future[Any]], api: httpx.AsyncClient, scenario: str) -> None:
    legs, thread_id, run_id = await flows[f"raw-{scenario}"]
    _, silence, answer = SCENARIOS[scenario]
    for leg in legs:
        assert leg.frames[-1] == {"event": "done", "data": "[DONE]"}, leg.frames[-3:]
        # Written to at least every keep-alive interval, all through the silence (of which
        # a loaded box may spend a few seconds before the response starts: submit tool
        # outputs answers once the workflow took them, and the model may be under way).
        assert leg.keepalives >= silence / KEEPALIVE / 2, leg
        assert leg.longest_gap < KEEPALIVE + SLACK, leg
    streamed = [frame for leg in legs for frame in leg.frames if frame["event"] != "done"]
    published = await replay(api, thread_id, run_id)
    assert streamed == published  # every event once: same ids, names and payloads
    assert [len(leg.frames) - 1 for leg in legs] == [len(p) for p in legs_of(published)]
    assert data(streamed[-1])["status"] == "completed"
    text = "".join(data(f)["delta"]["content"][0]["text"]["value"]
                   for f in legs[-1].frames if f["event"] == "thread.message.delta")
    assert text == answer


async def test_raw_events_resume_in_the_middle_of_a_silence(
        flows: dict[str, asyncio.Future[Any]], api: httpx.AsyncClient) -> None:
    before, after, thread_id, run_id = await flows["raw-resume"]
    # The first connection sat in the silence for RESUME_LINGER s, kept alive, no error.
    assert before.frames[-1]["event"] == "thread.message.delta"
    assert before.keepalives >= int(RESUME_LINGER / KEEPALIVE) - 1, before
    assert after.frames[-1] == {"event": "done", "data": "[DONE]"}
    assert after.keepalives >= (20 - RESUME_LINGER) / KEEPALIVE - 3, after
    assert max(before.longest_gap, after.longest_gap) < KEEPALIVE + SLACK
    # Nothing lost or repeated across the reconnection.
    assert before.frames + after.frames[:-1] == await replay(api, thread_id, run_id)


async def test_an_xread_blocking_the_longest_allowed_returns_empty(
        flows: dict[str, asyncio.Future[Any]]) -> None:
    """The root cause on its own: a read blocking as long as we allow, on a stream that
    stays empty, returns nothing (it raised TimeoutError after 5 s)."""
    assert await flows["quiet-read"] == []
    assert MAX_BLOCK_SECONDS > 5  # above redis-py 8's default socket timeout: the point


async def test_the_fake_model_pauses_where_told(fake_llm: FakeLLM) -> None:
    """[[pause:N:MS]]: the opening chunk and N pieces at once, then MS ms of silence."""
    body = {"model": "m", "stream": True,
            "messages": [{"role": "user", "content": "[[pause:2:3000]] [[reply:a b c d]]"}]}
    arrivals: list[tuple[float, str]] = []
    async with httpx.AsyncClient() as http, http.stream(
            "POST", f"{fake_llm.base_url}/chat/completions", json=body) as response:
        start = time.monotonic()
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"]
                arrivals.append((time.monotonic() - start,
                                 (delta[0]["delta"].get("content") or "") if delta else ""))
    pieces = [(t, text) for t, text in arrivals if text]
    assert [text for _, text in pieces] == ["a ", "b ", "c ", "d"]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(pieces)]
    assert gaps[0] < 1.0 and gaps[1] >= 2.0 and gaps[2] < 1.0, gaps  # measured apart: CI lags
