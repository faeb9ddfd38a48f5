"""Streams text deltas unless the answer may be a tool call written into the content.

A model that writes its tool call as a ```json block must not reach clients as a chat
message: once it is parsed into a call, a half-streamed JSON message could not be taken
back. So text is held until its first non-space characters tell: `{`, ```json or
`<tool_call>` hold the whole answer for parsing at the end, anything else streams
from then on. Constrained mode holds everything (the answer is always JSON).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from core.llm.quirks import TOOL_OPENERS, Mode, parse_content_calls, parse_turn
from core.llm.types import Delta, TextDelta, ToolCall, ToolCallDelta, TurnOutcome

OnDelta = Callable[[Delta], Awaitable[None]]
# Decides, before anything is sent on, that the calls found are not to be taken.
Refuse = Callable[[list[ToolCall]], bool]


class ContentGate:
    def __init__(self, on_delta: OnDelta, mode: Mode, names: set[str]) -> None:
        self._downstream = on_delta
        self._mode = mode
        self._names = names
        self._held: list[str] = []
        # "undecided" -> "hold" (maybe a call) or "stream" (plain text).
        self._state = "hold" if mode == "constrained" else "undecided" if names else "stream"

    async def on_delta(self, delta: Delta) -> None:
        if not isinstance(delta, TextDelta) or self._state == "stream":
            await self._downstream(delta)
            return
        self._held.append(delta.text)
        if self._state == "hold":
            return
        start = "".join(self._held).lstrip().lower()
        if not start or any(opener.startswith(start) for opener in TOOL_OPENERS):
            return  # too short to tell yet
        if any(start.startswith(opener) for opener in TOOL_OPENERS):
            self._state = "hold"
            return
        self._state = "stream"
        await self._flush()

    async def finish(self, outcome: TurnOutcome,
                     refuse: Refuse | None = None) -> TurnOutcome | None:
        """The outcome with content-borne calls turned into real ones; held text released.

        None when `refuse` turned down the calls found in the content: nothing of this
        answer was sent on, and the caller asks again.
        """
        if self._mode == "constrained":
            return await self._finish_constrained(outcome, refuse)
        calls: list[ToolCall] = []
        if self._held and not outcome.tool_calls and outcome.finish_reason != "length":
            calls = parse_content_calls(outcome.text, self._names) or []
        if not calls:
            await self._flush()
            return outcome
        if refuse is not None and refuse(calls):
            self._held = []
            return None
        return await self._as_calls(outcome, calls)

    async def _finish_constrained(self, outcome: TurnOutcome,
                                  refuse: Refuse | None) -> TurnOutcome | None:
        text, calls = outcome.text, list[ToolCall]()
        if outcome.finish_reason != "length":  # cut-off JSON is no call: show what came
            text, calls = parse_turn(outcome.text, self._names)
        if calls and refuse is not None and refuse(calls):
            self._held = []
            return None
        if calls:
            return await self._as_calls(outcome, calls)
        self._held = [text]
        await self._flush()
        return replace(outcome, text=text)

    async def _as_calls(self, outcome: TurnOutcome, calls: list[ToolCall]) -> TurnOutcome:
        self._held = []
        for index, call in enumerate(calls):
            await self._downstream(ToolCallDelta(index=index, id=call.id, name=call.name,
                                                 arguments=call.arguments))
        return replace(outcome, text="", tool_calls=calls, finish_reason="tool_calls")

    async def _flush(self) -> None:
        text = "".join(self._held)
        self._held = []
        if text:
            await self._downstream(TextDelta(text))
