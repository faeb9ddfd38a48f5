"""The neutral shape of one model turn: what we send, what streams back, what it ends as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON string, as the model produced it


@dataclass
class ChatMessage:
    role: Role
    # Text, or OpenAI-style content parts for vision ({"type": "image_url", ...}).
    content: str | list[dict[str, Any]] = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass
class FunctionSpec:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    tools: list[FunctionSpec] = field(default_factory=list)
    # "auto" | "none" | "required" | {"type": "function", "function": {"name": ...}}
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_completion_tokens: int | None = None
    response_format: dict[str, Any] | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCallDelta:
    index: int
    id: str | None
    name: str | None
    arguments: str


Delta = TextDelta | ToolCallDelta


@dataclass
class TurnOutcome:
    text: str
    tool_calls: list[ToolCall]
    # "stop" | "tool_calls" | "length" | "content_filter"
    finish_reason: str
    usage: Usage
