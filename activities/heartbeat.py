"""Heartbeating while an activity waits on something slow (a model, a parser, an embedder).

Heartbeats are how a cancel reaches a running activity, and how Temporal notices a
dead worker long before the start-to-close timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

# The worker sends heartbeats (which carry cancels back) at most once a second
# (max_heartbeat_throttle_interval in worker.py): beating as often keeps a cancel's delay
# at ~1 s while a model streams.
HEARTBEAT_SECONDS = 1.0


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    # Called directly (tests, scripts), or a local activity: Temporal keeps those alive
    # through the workflow task's own heartbeats, and delivers their cancels itself.
    if not activity.in_activity() or activity.info().is_local:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
