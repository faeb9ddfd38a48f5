"""core/events.py on the real Redis: events published together reach a waiting reader together.

Redis serves a blocked XREAD right after the first XADD of a plain pipeline: a relay
would get a message's `step.created` alone, and its first token in a second read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as redis

from core import ids
from core.events import RunEvents
from core.settings import Settings

ANNOUNCING = (("thread.run.step.created", {"id": "step_1"}),
              ("thread.run.step.in_progress", {"id": "step_1"}),
              ("thread.message.created", {"id": "msg_1"}),
              ("thread.message.in_progress", {"id": "msg_1"}))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[redis.Redis]:
    client = redis.from_url(settings.redis_url)  # a pool: the reader gets its own connection
    try:
        yield client
    finally:
        await client.aclose()


async def _blocked_xreads(client: redis.Redis) -> int:
    return sum(1 for c in await client.client_list()
               if c.get("cmd") == "xread" and "b" in c.get("flags", ""))


async def _first_read(client: redis.Redis, run_id: str,
                      publish: Callable[[RunEvents], Awaitable[None]]) -> list[str]:
    """The event names a reader already waiting on the run's stream gets in one read."""
    events = RunEvents(client)
    before = await _blocked_xreads(client)
    reading = asyncio.ensure_future(events.read(run_id, "0-0", 10_000))
    deadline = time.monotonic() + 10
    while await _blocked_xreads(client) <= before:
        assert time.monotonic() < deadline, "the reader never blocked"
        await asyncio.sleep(0.01)
    await publish(events)
    return [event.event for event in await asyncio.wait_for(reading, 10)]


async def test_a_first_token_reaches_a_waiting_reader_with_its_announcing_events(
        client: redis.Redis) -> None:
    run_id = ids.new_id(ids.RUN)
    names = await _first_read(client, run_id, lambda events: events.publish_text_delta(
        run_id, "msg_1", "Hello", first=True, preceded_by=ANNOUNCING))
    assert names == [name for name, _ in ANNOUNCING] + ["thread.message.delta"]


async def test_events_published_together_are_read_together(client: redis.Redis) -> None:
    run_id = ids.new_id(ids.RUN)
    ending = (("thread.message.completed", {"id": "msg_1"}),
              ("thread.run.step.completed", {"id": "step_1"}),
              ("thread.run.completed", {"id": run_id}))
    names = await _first_read(client, run_id, lambda events: events.publish(run_id, *ending))
    assert names == [name for name, _ in ending]
