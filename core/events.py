"""Run events on Redis Streams: one stream per run, read by any API process.

Entries are (OpenAI event name, JSON payload); the Redis entry id becomes the
SSE `id:`, so a client that reconnects with `Last-Event-ID` resumes exactly
where it left off, from whichever API process it reaches.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.redis_client import MAX_BLOCK_SECONDS, never_sent

# Bounded, and gone a day after the run's last event: streams are for live
# delivery and short-term resume; Postgres is the record.
STREAM_MAXLEN = 10_000
STREAM_TTL_SECONDS = 24 * 3600
# How long an append keeps trying while Redis refuses connections (restarting, failing
# over: seconds, rarely tens of them). Past it the caller fails: a model turn is then
# retried by Temporal, an API request answers an error.
APPEND_RETRY_SECONDS = 30.0
_FIRST_PAUSE = 0.05

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamEvent:
    id: str
    event: str
    data: str  # JSON text, sent to the client as is


def _key(run_id: str) -> str:
    return f"run:{run_id}:events"


def _published_text_key(run_id: str, message_id: str) -> str:
    return f"run:{run_id}:text:{message_id}"


def _together(events: tuple[tuple[str, Any], ...]) -> bool:
    """Whether to wrap the appends in MULTI/EXEC. Redis serves a blocked XREAD right after
    the first XADD of a plain pipeline: a relay would get the first event alone, then read
    again for the rest (the first token came as the fifth of five events, in the second of
    two reads). Inside MULTI/EXEC, readers wake after EXEC and get them all at once."""
    return len(events) > 1


class RunEvents:
    def __init__(self, client: redis.Redis, unretried: redis.Redis | None = None) -> None:
        """`client` for commands that may run twice (core/redis_client.py); `unretried`
        (`create_redis(url, retry=False)`, default `client`) for the appends, which must
        not, and for the relay's reads, which check the stream before reading again."""
        # Typed loosely: redis-py's stubs cannot tell that decode_responses=False
        # (our clients) always returns bytes.
        self._redis: Any = client
        self._unretried: Any = unretried if unretried is not None else client

    @staticmethod
    def _append(pipe: Any, run_id: str, events: tuple[tuple[str, Any], ...],
                refresh_ttl: bool = True) -> None:
        """Queue events on a pipeline, in order, and (unless told not to) keep the stream's
        TTL fresh."""
        key = _key(run_id)
        for name, payload in events:
            pipe.xadd(key, {"event": name, "data": json.dumps(payload, separators=(",", ":"))},
                      maxlen=STREAM_MAXLEN, approximate=True)
        if refresh_ttl:
            pipe.expire(key, STREAM_TTL_SECONDS)

    async def _execute(self, transaction: bool, queue: Callable[[Any], None]) -> None:
        """Run the commands `queue` puts on a pipeline, sending them again only while
        Redis provably never received them (`never_sent`): a retried XADD whose first
        attempt did reach Redis would publish its event twice."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + APPEND_RETRY_SECONDS, _FIRST_PAUSE
        while True:
            try:
                async with self._unretried.pipeline(transaction=transaction) as pipe:
                    queue(pipe)
                    await pipe.execute()
                return
            except RedisConnectionError as error:
                if not never_sent(error) or loop.time() + pause > deadline:
                    raise
                if pause == _FIRST_PAUSE:
                    logger.warning("Redis refused an append (%s); retrying", error)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def publish(self, run_id: str, *events: tuple[str, Any]) -> None:
        """Append events in order (one round trip), together (see `_together`)."""
        await self._execute(_together(events), lambda pipe: self._append(pipe, run_id, events))

    async def publish_text_delta(self, run_id: str, message_id: str, text: str,
                                 first: bool = False,
                                 preceded_by: tuple[tuple[str, Any], ...] = ()) -> None:
        """A message delta, remembering what clients were sent (see `published_text`).

        Two commands per token, not four: the stream has its TTL from the run's first event
        (`thread.run.created`, before any delta) and every other event refreshes it; the
        text record gets its TTL with the message's first delta (`first`). `preceded_by`:
        events appended just before the delta in the same round trip (the message's
        `created` events with its first token, which is waiting for them)."""
        text_key = _published_text_key(run_id, message_id)
        payload = {"id": message_id, "object": "thread.message.delta", "delta": {"content": [
            {"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]}}
        appended = (*preceded_by, ("thread.message.delta", payload))

        def queue(pipe: Any) -> None:
            self._append(pipe, run_id, appended, refresh_ttl=bool(preceded_by))
            pipe.append(text_key, text.encode())
            if first:
                pipe.expire(text_key, STREAM_TTL_SECONDS)

        await self._execute(_together(appended), queue)

    async def discard(self, run_id: str) -> None:
        """Drop a run's stream: the run was announced but could not be written."""
        await self._redis.delete(_key(run_id))

    async def published_text(self, run_id: str, message_id: str) -> str:
        """The text already streamed for a message: a retried model call resumes after it."""
        value = await self._redis.get(_published_text_key(run_id, message_id))
        return value.decode() if value else ""

    async def last_id(self, run_id: str) -> str:
        entries = await self._redis.xrevrange(_key(run_id), count=1)
        return str(entries[0][0].decode()) if entries else "0-0"

    async def holds(self, run_id: str, entry_id: str) -> bool:
        """Whether the run's stream still holds `entry_id` (any entry, for "0-0"): false
        once Redis lost the stream (restarted without its data), when the events after it
        may be gone too."""
        key = _key(run_id)
        if entry_id == "0-0":
            return bool(await self._unretried.exists(key))
        return bool(await self._unretried.xrange(key, entry_id, entry_id, count=1))

    async def read(self, run_id: str, after_id: str, block_ms: int) -> list[StreamEvent]:
        """Events after `after_id`, waiting up to block_ms for the first one. Never
        re-sent by redis-py: a caller retrying after an error checks `holds` first."""
        if block_ms > MAX_BLOCK_SECONDS * 1000:  # the clients' socket timeout is above it
            raise ValueError(f"block_ms {block_ms} is above {MAX_BLOCK_SECONDS} s")
        response = await self._unretried.xread({_key(run_id): after_id}, block=block_ms,
                                               count=500)
        events = []
        for _, entries in response or []:
            for entry_id, fields in entries:
                events.append(StreamEvent(entry_id.decode(), fields[b"event"].decode(),
                                          fields[b"data"].decode()))
        return events
