"""Redis restarted (or gone a while) while streams wait on a silent model.

What a stream does then (api/streaming.py): it retries from the last event it sent, for up
to STREAM_REDIS_RETRY_SECONDS. If Redis came back with its data (persistence on, as
`assistants up` and any production Redis run it), the stream goes on and carries every
event exactly once: the relay knows its cursor, and appends are never sent twice
(core/redis_client.py). If Redis came back without the data, events may be lost, so the
stream ends with an `error` event (which the SDKs raise) rather than skip them silently; so
it does when Redis stays away longer than the window. Either way the run completes: the
worker's appends wait for Redis (they are retried only while connections are refused, so
never twice), and Postgres holds the record.

The session's Redis is shared by every test, so these run on a Valkey of their own
(launcher/embedded.py's, with append-only persistence), restarted here, with an app and a
worker of their own pointed at it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from api.streaming import FAILED, LOST
from core.redis_client import create_redis, never_sent
from core.settings import Settings
from launcher.embedded import EmbeddedStack, Ports
from launcher.processes import free_port
from tests.fake_llm import FakeLLM
from tests.faults.helpers import TERMINAL, poll_run
from tests.stream_helpers import (
    Recorder,
    check_once,
    data,
    leg,
    own_settings,
    read_sse,
    replay,
    sdk,
    served,
)

KEEPALIVE = 1.0


class PrivateRedis:
    """A Valkey on a fixed port that can be stopped and started again, with or without the
    data it had (its append-only file)."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="assistants-restart-redis-"))
        self.stack = EmbeddedStack(self.data_dir, Ports(redis=free_port()), ephemeral=False)
        self.url = ""

    async def start(self) -> None:
        ready = self.stack.start_redis()  # spawned here, on the main thread
        self.url = (await asyncio.to_thread(ready))["REDIS_URL"]

    async def stop(self, forget: bool = False) -> None:
        await asyncio.to_thread(self.stack.processes["redis"].stop)
        if forget:
            shutil.rmtree(self.data_dir / "redis")

    def close(self) -> None:
        self.stack.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
async def private_redis() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        await server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
async def redis_up(private_redis: PrivateRedis) -> PrivateRedis:
    """The private Redis running (a failed test may have left it down)."""
    if not private_redis.stack.processes["redis"].running():
        await private_redis.start()
    return private_redis


def _content(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"


async def _python_stream(client: openai.AsyncOpenAI, content: str,
                         recorder: Recorder) -> dict[str, Any]:
    """A Python SDK stream of a new run (create run); `recorder` shows its progress."""
    assistant = await client.beta.assistants.create(model="fake-model")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": content}])
    recorder.thread_id = thread.id
    return await leg(lambda handler: client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler), recorder)


async def _raw_stream(http: httpx.AsyncClient, content: str) -> tuple[list[dict[str, str]], Any]:
    """Raw SSE of a new thread and run; its frames, and the thread (its first event)."""
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    async with http.stream("POST", "/v1/threads/runs", json={
            "assistant_id": assistant["id"], "stream": True,
            "thread": {"messages": [{"role": "user", "content": content}]}}) as response:
        frames = (await read_sse(response)).frames
    return frames, data(frames[0])


async def _in_the_silence(recorder: Recorder, deltas: int) -> None:
    async with asyncio.timeout(30):
        while len(recorder.deltas) < deltas:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the relays are back in XREAD, waiting


def _api(settings: Settings, redis: PrivateRedis, **changes: Any) -> Any:
    return served(own_settings(settings, redis_url=redis.url,
                               stream_keepalive_seconds=KEEPALIVE, **changes))


async def test_a_restart_with_the_data_kept_the_streams_go_on_with_every_event_once(
        settings: Settings, redis_up: PrivateRedis, fake_llm: FakeLLM) -> None:
    """Down for 4 s from 0.5 s into a 3 s silence: the model goes on while Redis is away,
    so the worker's appends wait for it too."""
    text = _content("[[pause:2:3000]] [[tokens:5]]")
    async with _api(settings, redis_up) as url, \
            httpx.AsyncClient(base_url=url, timeout=120) as http:
        recorder = Recorder()
        python = asyncio.ensure_future(_python_stream(sdk(url), text, recorder))
        raw = asyncio.ensure_future(_raw_stream(http, text))
        await _in_the_silence(recorder, 2)
        await redis_up.stop()
        await asyncio.sleep(4)
        await redis_up.start()
        assert await check_once(http, [await python]) == "w1 w2 w3 w4 w5"
        frames, thread = await raw
        assert frames[-1] == {"event": "done", "data": "[DONE]"}
        assert frames[:-1] == await replay(http, thread["id"], data(frames[1])["id"])
    assert len(fake_llm.requests_containing(text)) == 2  # one model call per run


async def test_a_restart_that_lost_the_data_ends_the_streams_with_an_error(
        settings: Settings, redis_up: PrivateRedis) -> None:
    text = _content("[[pause:2:4000]] [[tokens:5]]")
    async with _api(settings, redis_up) as url, \
            httpx.AsyncClient(base_url=url, timeout=120) as http:
        client, recorder = sdk(url), Recorder()
        python = asyncio.ensure_future(_python_stream(client, text, recorder))
        raw = asyncio.ensure_future(_raw_stream(http, text))
        await _in_the_silence(recorder, 2)
        await redis_up.stop(forget=True)
        await redis_up.start()
        with pytest.raises(openai.APIError) as raised:
            await python
        assert raised.value.message == LOST
        frames, thread = await raw
        assert frames[-1]["event"] == "error"
        assert data(frames[-1])["error"]["message"] == LOST
        # The runs went on regardless, and their records are whole.
        for thread_id in (thread["id"], recorder.thread_id):
            await _completed(client, thread_id)


async def test_redis_away_longer_than_the_retry_window_ends_the_stream_with_an_error(
        settings: Settings, redis_up: PrivateRedis, fake_llm: FakeLLM) -> None:
    text = _content("[[pause:2:2000]] [[tokens:5]]")
    async with _api(settings, redis_up, stream_redis_retry_seconds=2.0) as url:
        client, recorder = sdk(url), Recorder()
        python = asyncio.ensure_future(_python_stream(client, text, recorder))
        await _in_the_silence(recorder, 2)
        await redis_up.stop()
        down_since = time.monotonic()
        with pytest.raises(openai.APIError) as raised:
            await python
        assert raised.value.message == FAILED
        # Away 10 s in all: longer than redis-py's own reconnect retries (~5 s by default),
        # within APPEND_RETRY_SECONDS.
        await asyncio.sleep(down_since + 10 - time.monotonic())
        await redis_up.start()
        # The model went on meanwhile; the worker's appends waited for Redis, so the run
        # completes without a second model call.
        await _completed(client, recorder.thread_id)
    assert len(fake_llm.requests_containing(text)) == 1


async def _completed(client: openai.AsyncOpenAI, thread_id: str) -> None:
    [run] = (await client.beta.threads.runs.list(thread_id=thread_id)).data
    run = await poll_run(client, thread_id, run.id, TERMINAL, 60)
    assert run.status == "completed", run
    messages = await client.beta.threads.messages.list(thread_id=thread_id)
    assert messages.data[0].content[0].text.value == "w1 w2 w3 w4 w5"  # type: ignore[union-attr]


async def test_a_client_that_leaves_ends_its_relay(settings: Settings,
                                                   redis_up: PrivateRedis) -> None:
    """The relay's XREAD (the only blocking command on this Redis) ends with the client,
    while the run is still silent."""
    probe = create_redis(redis_up.url)

    async def blocked() -> int:
        return int((await probe.info("clients"))["blocked_clients"])

    async def events(url: str) -> None:
        async with http.stream("GET", url) as response:
            await read_sse(response)

    try:
        async with _api(settings, redis_up) as api, \
                httpx.AsyncClient(base_url=api, timeout=120) as http:
            assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
            run = (await http.post("/v1/threads/runs", json={
                "assistant_id": assistant["id"], "thread": {"messages": [
                    {"role": "user", "content": _content("[[pause:0:30000]]")}]}})).json()
            run_url = f"/v1/threads/{run['thread_id']}/runs/{run['id']}"
            stream = asyncio.ensure_future(events(f"{run_url}/events"))
            async with asyncio.timeout(20):
                while await blocked() == 0:
                    await asyncio.sleep(0.1)
            stream.cancel()  # the client drops the connection
            async with asyncio.timeout(5):
                while await blocked():
                    await asyncio.sleep(0.1)
            assert (await http.get(run_url)).json()["status"] == "in_progress"
            await http.post(f"{run_url}/cancel")  # no model turn left for the worker's exit
    finally:
        await probe.aclose()


async def test_only_errors_before_sending_count_as_never_sent(redis_up: PrivateRedis) -> None:
    refused = create_redis(f"redis://127.0.0.1:{free_port()}/0", retry=False)
    with pytest.raises(RedisConnectionError) as raised:
        await refused.ping()
    assert never_sent(raised.value)
    await refused.aclose()
    # The server closes the connection after the command went out: did it run? Unknown.
    victim, killer = create_redis(redis_up.url, retry=False), create_redis(redis_up.url)
    try:
        await victim.client_setname("victim")
        waiting = asyncio.ensure_future(victim.blpop(["never-filled"], timeout=5))
        await asyncio.sleep(0.3)
        [victim_id] = [c["id"] for c in await killer.client_list() if c["name"] == "victim"]
        await killer.client_kill_filter(_id=victim_id)
        with pytest.raises(RedisConnectionError) as lost:
            await waiting
        assert not never_sent(lost.value)
    finally:
        await victim.aclose()
        await killer.aclose()
