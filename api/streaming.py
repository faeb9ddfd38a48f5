"""Server-sent events: relays a run's Redis stream in OpenAI's framing.

Stateless: everything comes from the run's stream, so any API process can
serve any run, and a client resumes from its last SSE `id:`.

A stream stays open through any silence (a model thinking for minutes before its first
token, long pauses between tokens) until the run needs the client or ends. Keep-alive
comments go out on their own clock (STREAM_KEEPALIVE_SECONDS after the last write), not
when a read returns, so neither the XREAD block time nor a slow Redis can delay them.

Redis errors: the relay knows the last event it sent, so it reads again from there, for up
to STREAM_REDIS_RETRY_SECONDS, and the client sees every event once. Before reading again
it checks that Redis still holds that event: a Redis that came back without its data (no
persistence) may have lost events after it too, and the relay ends with an `error` event
rather than skip them silently. Both SDKs raise on it. (A replica promoted while it lagged
may hold the event yet miss later ones: replication is asynchronous, and that loss cannot
be seen from here.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from core.events import RunEvents, StreamEvent
from core.redis_client import MAX_BLOCK_SECONDS
from core.settings import Settings

logger = logging.getLogger(__name__)

# A POST stream ends when the run needs the client or is over.
STREAM_ENDS = frozenset({
    "thread.run.requires_action", "thread.run.completed", "thread.run.failed",
    "thread.run.cancelled", "thread.run.expired", "thread.run.incomplete",
})
# How long one XREAD waits for the next event. Any value up to the clients' limit works
# (keep-alives do not wait for reads); the longest means fewest round trips when quiet.
BLOCK_MS = int(MAX_BLOCK_SECONDS * 1000)
# How often a quiet stream asks the server whether its client is still there: a relay of a
# client that left ends within this (or at its next write, whichever comes first).
DISCONNECT_CHECK_SECONDS = 5.0
# A comment line: clients skip it, proxies see traffic. One newline, not the usual blank
# line after it: openai-python (at least to 3.63) keeps the last `id:` across events and so
# dispatches an event with empty data at any blank line, then fails parsing it as JSON
# (openai/openai-python#2722). Spec-compliant parsers read both forms the same.
KEEPALIVE = ": keep-alive\n"
FAILED = "The event stream failed; resume with Last-Event-ID."
LOST = ("The event stream lost events (its store restarted without them); retrieve the run "
        "and its messages.")


class StreamLost(Exception):
    """Redis no longer holds the event the relay last sent."""


def _frame(event: str, data: str, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def _error(message: str) -> str:
    # Both SDKs raise on `event: error` whose data is {"error": {...}}.
    return _frame("error", json.dumps({"error": {
        "message": message, "type": "server_error", "param": None, "code": None}}))


def _setting(request: Request | None, name: str) -> float:
    settings = getattr(request.app.state, "settings", None) if request is not None else None
    value = getattr(settings, name, None)
    return float(value if value is not None else Settings.model_fields[name].default)


async def _read(events: RunEvents, run_id: str, cursor: str, failures: int) -> list[StreamEvent]:
    """The next events after `cursor`; after `failures` failed reads, a pause and a check
    that Redis still holds `cursor` come first."""
    if failures:
        await asyncio.sleep(min(0.05 * 2 ** failures, 1.0))
        if not await events.holds(run_id, cursor):
            raise StreamLost(cursor)
    return await events.read(run_id, cursor, BLOCK_MS)


def _retrieve(read: asyncio.Future[list[StreamEvent]]) -> None:
    """Take an abandoned read's outcome, so asyncio does not log it as never retrieved."""
    if not read.cancelled():
        read.exception()


async def relay(events: RunEvents, run_id: str, after_id: str,
                request: Request | None = None) -> AsyncIterator[str]:
    """Events after `after_id` until the stream ends, then `done`. Settings come from
    the request's app (the defaults without a request)."""
    keepalive = _setting(request, "stream_keepalive_seconds")
    patience = _setting(request, "stream_redis_retry_seconds")
    loop = asyncio.get_running_loop()
    cursor, failures, failing_since = after_id, 0, 0.0
    last_write = last_check = loop.time()
    pending: asyncio.Future[list[StreamEvent]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(_read(events, run_id, cursor, failures))
            wake = min(last_write + keepalive, last_check + DISCONNECT_CHECK_SECONDS)
            await asyncio.wait({pending}, timeout=max(0.0, wake - loop.time()))
            now = loop.time()
            if not pending.done():
                if now >= last_check + DISCONNECT_CHECK_SECONDS:
                    last_check = now
                    if request is not None and await request.is_disconnected():
                        return
                if now >= last_write + keepalive:
                    last_write = now
                    yield KEEPALIVE
                continue
            done, pending = pending, None
            try:
                batch = done.result()
            except RedisError as error:
                if not failures:
                    failing_since = now
                    logger.warning("stream of run %s: Redis failed (%s); retrying from %s",
                                   run_id, error, cursor)
                elif now - failing_since > patience:
                    logger.error("stream of run %s: Redis failing for %.0f s (%s); ending it",
                                 run_id, now - failing_since, error)
                    yield _error(FAILED)
                    return
                failures += 1
                continue
            if failures:
                logger.info("stream of run %s: Redis is back; resuming after %s", run_id, cursor)
                failures = 0
            if not batch:
                continue
            # One write per batch, not per event: the first token comes with the four
            # events announcing its step and message, and each write is a send to the
            # client (~0.4 ms apart on 2 cores when written one by one).
            frames = []
            for item in batch:
                cursor = item.id
                frames.append(_frame(item.event, item.data, item.id))
                if item.event in STREAM_ENDS:
                    frames.append(_frame("done", "[DONE]"))
                    yield "".join(frames)
                    return
            last_write = loop.time()
            yield "".join(frames)
    except StreamLost:
        logger.error("stream of run %s: Redis no longer holds event %s", run_id, cursor)
        yield _error(LOST)
    except Exception:
        logger.exception("stream of run %s broke", run_id)
        yield _error(FAILED)
    finally:
        if pending is not None:  # the client left (or we failed) while a read waited
            pending.cancel()  # redis-py drops that connection; nothing else to wait for
            pending.add_done_callback(_retrieve)


def sse_response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
