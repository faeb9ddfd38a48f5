"""Shared by the provider tests: a turn against any provider, and a tool-call history."""

from __future__ import annotations

from typing import Any

from core.llm.types import ChatMessage, ChatRequest, Delta, FunctionSpec, ToolCall, TurnOutcome

WEATHER = FunctionSpec("get_weather", "Weather in a city",
                       {"type": "object", "properties": {"city": {"type": "string"}}})
ADD = FunctionSpec("add", None, {"type": "object"})


async def turn(provider: Any, text: str | list[ChatMessage], tools: list[FunctionSpec] | None = None,
               **extra: Any) -> tuple[TurnOutcome, list[Delta]]:
    """One `complete()` call; returns the outcome and every delta handed out on the way."""
    messages = [ChatMessage("user", text)] if isinstance(text, str) else text
    request = ChatRequest(model="m", messages=messages, tools=tools or [], **extra)
    deltas: list[Delta] = []

    async def on_delta(delta: Delta) -> None:
        deltas.append(delta)

    return await provider.complete(request, on_delta), deltas


async def ignore(_: Delta) -> None:
    return None


def history(marker: str) -> list[ChatMessage]:
    """System, a user turn, two parallel calls and their results: a full tool round trip."""
    calls = [ToolCall("call_a", "get_weather", '{"city":"Paris"}'), ToolCall("call_b", "add", "{}")]
    return [ChatMessage("system", "Be brief."), ChatMessage("user", f"{marker} [[call:add {{}}]]"),
            ChatMessage("assistant", "", tool_calls=calls),
            ChatMessage("tool", "18C", tool_call_id="call_a"),
            ChatMessage("tool", "3", tool_call_id="call_b")]
