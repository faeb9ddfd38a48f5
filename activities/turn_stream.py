"""One model turn, published as OpenAI stream events while the model produces it.

The step and message rows an event names are created the moment the first
text or tool-call delta arrives, so every streamed id can be fetched at once.

Retries: when a model call dies halfway and Temporal retries it, clients have
already seen part of the text. The retry streams only what goes *beyond* that
prefix; if the new answer diverges, it streams nothing more and the final
`thread.message.completed` (which SDKs take as the message's snapshot)
carries the authoritative text. Stored messages never hold duplicated text.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from activities import run_writes, turn_writes
from core.events import RunEvents
from core.llm.types import Delta, TextDelta
from core.raw_statements import connect
from core.rawdb import RawPool
from core.tables import RunRow
from core.wire import message_columns_to_wire, step_columns_to_wire

Event = tuple[str, Any]  # (OpenAI event name, payload)


class TurnStream:
    def __init__(self, db: RawPool, events: RunEvents, run: RunRow, turn: int,
                 announced: Awaitable[None]) -> None:
        self._db = db
        self._events = events
        # The run's in_progress event, still on its way: published before anything else.
        self._announced = announced
        self._run = run
        self._turn = turn
        self._message_id = run_writes.message_id(run.id, turn)
        self._text = ""
        self._published = ""
        self._diverged = False
        self._message_open = False
        self._tools_open = False
        self._tools_replayed = False
        self._calls_announced: set[int] = set()

    def restart(self) -> None:
        """A second model call for the same turn (a repair): like a retry, it streams
        only text beyond what clients already have, and no more tool-call deltas."""
        self._text = ""
        self._tools_replayed = self._tools_open

    @property
    def message_opened(self) -> bool:
        return self._message_open

    async def on_delta(self, delta: Delta) -> None:
        # No heartbeat per delta: a local activity's liveness is its workflow task's, and
        # a regular one's (runs started before the local-activity turn) is
        # `heartbeating()`'s background beat; a heartbeat call costs ~0.2 ms of worker CPU.
        if isinstance(delta, TextDelta):
            opened = () if self._message_open else await self._open_message()
            self._text += delta.text
            await self._publish_text(opened)
            return
        if not self._tools_open:
            await self._open_tools()
        if self._tools_replayed:
            return  # the final requires_action event carries the full calls
        call: dict[str, object] = {"index": delta.index, "type": "function",
                                   "function": {"arguments": delta.arguments}}
        if delta.index not in self._calls_announced:
            self._calls_announced.add(delta.index)
            call["id"] = run_writes.call_id(self._run.id, self._turn, delta.index)
            call["function"] = {"name": delta.name or "", "arguments": delta.arguments,
                                "output": None}
        step_id = run_writes.step_id(self._run.id, self._turn, "tools")
        await self._events.publish(self._run.id, ("thread.run.step.delta", {
            "id": step_id, "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}}))

    async def _open_message(self) -> tuple[Event, ...]:
        """The message's rows, and the events that announce them (to publish with the
        first token, in one round trip: they sit between the model's first token and the
        client's). Nothing to announce if an earlier attempt of this turn created them."""
        async with connect(self._db, transaction=False) as db:
            created = await turn_writes.open_message(db, self._run, self._turn)
        self._message_open = True  # the rows exist now
        await self._announced
        if created is None:  # an earlier attempt of this turn created them
            self._published = await self._events.published_text(self._run.id, self._message_id)
            return ()
        step, message = step_columns_to_wire(created[0]), message_columns_to_wire(created[1])
        return (("thread.run.step.created", step), ("thread.run.step.in_progress", step),
                ("thread.message.created", message), ("thread.message.in_progress", message))

    async def _open_tools(self) -> None:
        async with connect(self._db, transaction=False) as db:
            created = await turn_writes.open_tools(db, self._run, self._turn)
        self._tools_open = True
        await self._announced
        if created is None:
            self._tools_replayed = True
            return
        step = step_columns_to_wire(created)
        await self._events.publish(self._run.id, ("thread.run.step.created", step),
                                   ("thread.run.step.in_progress", step))

    async def _publish_text(self, opened: tuple[Event, ...]) -> None:
        """What clients do not have yet of the text, after `opened` (the message's own
        events, with its first token)."""
        if not self._diverged:
            if len(self._text) <= len(self._published):
                # A retry still re-producing what clients already have.
                self._diverged = not self._published.startswith(self._text)
            elif not self._text.startswith(self._published):
                self._diverged = True
            else:
                new, first = self._text[len(self._published):], not self._published
                self._published = self._text
                await self._events.publish_text_delta(self._run.id, self._message_id, new,
                                                      first, preceded_by=opened)
                return
        if opened:
            await self._events.publish(self._run.id, *opened)
