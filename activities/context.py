"""Builds the model's input for one turn from what Postgres holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.llm.types import ChatMessage, ChatRequest, FunctionSpec, ToolCall
from core.tables import MessageRow, RunRow, RunStepRow


def _message_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Plain text when the message is all text; OpenAI content parts when it has images."""
    texts = [p["text"]["value"] for p in parts if p.get("type") == "text"]
    images = [p for p in parts if p.get("type") == "image_url"]
    if not images:
        return "\n".join(texts)
    return [{"type": "text", "text": t} for t in texts] + images


def tool_specs(tools: list[dict[str, Any]]) -> list[FunctionSpec]:
    return [
        FunctionSpec(name=t["function"]["name"], description=t["function"].get("description"),
                     parameters=t["function"].get("parameters"),
                     strict=t["function"].get("strict") or None)
        for t in tools if t.get("type") == "function"
    ]


def _tool_choice(value: Any) -> str | dict[str, Any] | None:
    if value in (None, "auto"):
        return None  # the provider default; some servers reject an explicit "auto"
    if isinstance(value, dict) and value.get("type") != "function":
        return None  # built-in tools are not the provider's business
    return value  # type: ignore[no-any-return]


def _response_format(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value.get("type") != "text" else None


async def build_request(session: AsyncSession, run: RunRow) -> ChatRequest:
    messages: list[ChatMessage] = []
    if run.instructions:
        messages.append(ChatMessage(role="system", content=run.instructions))
    thread_messages = await session.scalars(
        select(MessageRow)
        .where(MessageRow.thread_id == run.thread_id, MessageRow.run_id.is_distinct_from(run.id))  # type: ignore[union-attr]
        .order_by(MessageRow.seq)  # type: ignore[arg-type]
    )
    for message in thread_messages:
        role = "assistant" if message.role == "assistant" else "user"
        messages.append(ChatMessage(role=role, content=_message_content(message.content)))
    # This run's earlier turns that called functions, with the outputs submitted.
    steps = await session.scalars(
        select(RunStepRow)
        .where(RunStepRow.run_id == run.id, RunStepRow.type == "tool_calls",
               RunStepRow.status == "completed")
        .order_by(RunStepRow.seq)  # type: ignore[arg-type]
    )
    for step in steps:
        calls = step.step_details["tool_calls"]
        messages.append(ChatMessage(role="assistant", content="", tool_calls=[
            ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls
        ]))
        for call in calls:
            messages.append(ChatMessage(role="tool", content=call["function"]["output"] or "",
                                        tool_call_id=call["id"]))
    return ChatRequest(
        model=run.model,
        messages=messages,
        tools=tool_specs(run.tools),
        tool_choice=_tool_choice(run.tool_choice),
        parallel_tool_calls=None if run.parallel_tool_calls else False,
        temperature=run.temperature,
        top_p=run.top_p,
        max_completion_tokens=run.max_completion_tokens,
        response_format=_response_format(run.response_format),
    )
