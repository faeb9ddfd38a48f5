"""Builds the model's input for one turn from what Postgres holds, within the run's budgets.

Budgets, as OpenAI documents them: `max_prompt_tokens` and
`max_completion_tokens` hold across all turns of a run; `truncation_strategy`
decides which thread messages are sent (`last_messages: N`, or `auto`: drop
the oldest until the prompt fits the model's context window).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activities.file_search import FILE_SEARCH, FILE_SEARCH_SPEC, file_search_settings
from core.llm.types import ChatMessage, ChatRequest, FunctionSpec, ToolCall, Usage
from core.tables import RunRow
from core.tokens import MESSAGE_OVERHEAD, content_tokens

# Room kept for the answer when fitting a prompt into the context window.
DEFAULT_COMPLETION_RESERVE = 1024


@dataclass
class PreparedTurn:
    request: ChatRequest
    prompt_tokens: int  # our estimate of what is sent
    # The tool_choice this turn obeys (see `_turn_tool_choice`).
    tool_choice: Any = "auto"
    # Set when a budget is already spent: the run ends incomplete with this reason.
    exhausted: str | None = None


# file id -> a data URL of the image (None if it cannot be shown to the model).
ImageResolver = Callable[[str], Awaitable[str | None]]


async def _message_content(parts: list[dict[str, Any]],
                           images: ImageResolver | None) -> str | list[dict[str, Any]]:
    """Plain text when the message is all text; OpenAI content parts when it has images.
    `image_file` parts become `image_url` parts with the file's bytes as a data URL,
    which every vision-capable backend accepts."""
    texts = [p["text"]["value"] for p in parts if p.get("type") == "text"]
    pictures: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") == "image_url":
            pictures.append(part)
        elif part.get("type") == "image_file" and images is not None:
            url = await images(part["image_file"]["file_id"])
            if url:
                pictures.append({"type": "image_url", "image_url": {
                    "url": url, "detail": part["image_file"].get("detail", "auto")}})
    if not pictures:
        return "\n".join(texts)
    return [{"type": "text", "text": t} for t in texts] + pictures


def tool_specs(tools: list[dict[str, Any]]) -> list[FunctionSpec]:
    specs = [
        FunctionSpec(name=t["function"]["name"], description=t["function"].get("description"),
                     parameters=t["function"].get("parameters"),
                     strict=t["function"].get("strict") or None)
        for t in tools if t.get("type") == "function"
    ]
    if file_search_settings(tools) is not None and FILE_SEARCH not in {s.name for s in specs}:
        specs.append(FILE_SEARCH_SPEC)  # the model calls file_search like a function
    return specs


def _tool_choice(value: Any) -> str | dict[str, Any] | None:
    if value in (None, "auto"):
        return None  # the provider default; some servers reject an explicit "auto"
    if isinstance(value, dict) and value.get("type") == FILE_SEARCH:
        return {"type": "function", "function": {"name": FILE_SEARCH}}
    if isinstance(value, dict) and value.get("type") != "function":
        return None  # code_interpreter: not something we run
    return value  # type: ignore[no-any-return]


def _response_format(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value.get("type") != "text" else None


def _tokens(messages: list[ChatMessage]) -> int:
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD + content_tokens(message.content)
        total += sum(content_tokens(c.name + c.arguments) for c in message.tool_calls)
    return total


def used_so_far(steps: Sequence[Mapping[str, Any]]) -> Usage:
    total = Usage()
    for step in steps:
        if step["usage"]:
            total.prompt_tokens += step["usage"]["prompt_tokens"]
            total.completion_tokens += step["usage"]["completion_tokens"]
    return total


async def _history(messages: Sequence[Sequence[Any]],
                   images: ImageResolver | None) -> list[ChatMessage]:
    return [ChatMessage(role="assistant" if role == "assistant" else "user",
                        content=await _message_content(content, images))
            for role, content in messages]


def _tool_turns(steps: Sequence[Mapping[str, Any]]) -> list[ChatMessage]:
    """This run's earlier turns that called functions, with the outputs submitted."""
    turns: list[ChatMessage] = []
    for step in steps:
        if step["type"] != "tool_calls" or step["status"] != "completed":
            continue
        calls = step["step_details"]["tool_calls"]
        turns.append(ChatMessage(role="assistant", content="", tool_calls=[
            _as_model_call(c) for c in calls]))
        turns.extend(ChatMessage(role="tool", content=_output(c), tool_call_id=c["id"])
                     for c in calls)
    return turns


def _as_model_call(call: dict[str, Any]) -> ToolCall:
    """A recorded call as the model made it (file_search calls were functions to it)."""
    if call["type"] == "function":
        return ToolCall(call["id"], call["function"]["name"], call["function"]["arguments"])
    return ToolCall(call["id"], call["type"], json.dumps({"query": call.get("_query", "")}))


def _output(call: dict[str, Any]) -> str:
    if call["type"] == "function":
        return str(call["function"]["output"] or "")
    return str(call.get("_output", ""))


def _turn_tool_choice(run_choice: Any, tools_called: bool) -> Any:
    """A forcing tool_choice (`required`, a named tool) applies until the model has called a
    tool in this run; after that the model must be free to answer, or no run could end."""
    forcing = run_choice == "required" or isinstance(run_choice, dict)
    return "auto" if forcing and tools_called else run_choice


async def prepare_turn(run: RunRow, context_window: int, thread: Sequence[Sequence[Any]],
                       steps: Sequence[Mapping[str, Any]],
                       images: ImageResolver | None = None) -> PreparedTurn:
    """`thread`: [role, content] of the thread's messages but this run's, in order;
    `steps`: the run's steps so far, in order (both as `turn_writes.start_turn` reads them)."""
    system = [ChatMessage(role="system", content=run.instructions)] if run.instructions else []
    history = await _history(thread, images)
    tools_so_far = _tool_turns(steps)
    used = used_so_far(steps)

    strategy = run.truncation_strategy or {"type": "auto"}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        history = history[-int(strategy["last_messages"]):]
    completion_budget = None
    if run.max_completion_tokens is not None:
        completion_budget = run.max_completion_tokens - used.completion_tokens
    limit = context_window - (completion_budget or DEFAULT_COMPLETION_RESERVE)
    if run.max_prompt_tokens is not None:
        limit = min(limit, run.max_prompt_tokens - used.prompt_tokens)
    # Drop the oldest thread messages until the prompt fits; never the newest one.
    fixed = _tokens(system) + _tokens(tools_so_far)
    while len(history) > 1 and fixed + _tokens(history) > limit:
        history.pop(0)
    messages = system + history + tools_so_far
    prompt_tokens = _tokens(messages)

    exhausted = None
    if completion_budget is not None and completion_budget <= 0:
        exhausted = "max_completion_tokens"
    elif prompt_tokens > limit:
        exhausted = "max_prompt_tokens" if run.max_prompt_tokens is not None else None
    turn_choice = _turn_tool_choice(run.tool_choice, bool(tools_so_far))
    request = ChatRequest(
        model=run.model,
        messages=messages,
        tools=tool_specs(run.tools),
        tool_choice=_tool_choice(turn_choice),
        parallel_tool_calls=None if run.parallel_tool_calls else False,
        temperature=run.temperature,
        top_p=run.top_p,
        max_completion_tokens=completion_budget,
        response_format=_response_format(run.response_format),
    )
    return PreparedTurn(request, prompt_tokens, turn_choice, exhausted)
