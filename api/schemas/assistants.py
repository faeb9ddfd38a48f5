"""Assistant objects and requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from api.schemas.common import Metadata, Request, ResponseFormat, ToolResources, Tools, WireObject
from api.schemas.tool_resources import CreateToolResources
from core.tables import AssistantRow


class CreateAssistant(Request):
    model: str
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    tools: Tools = Field(default_factory=list)
    tool_resources: CreateToolResources | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    response_format: ResponseFormat | None = None


class ModifyAssistant(Request):
    model: str | None = None
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    tools: Tools | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    response_format: ResponseFormat | None = None


class AssistantObject(WireObject):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_resources: dict[str, Any] | None
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    response_format: Any


def assistant_to_wire(row: AssistantRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "assistant",
        "created_at": row.created_at,
        "name": row.name,
        "description": row.description,
        "model": row.model,
        "instructions": row.instructions,
        "tools": row.tools,
        "tool_resources": row.tool_resources or {},
        "metadata": row.metadata_,
        "temperature": 1.0 if row.temperature is None else row.temperature,
        "top_p": 1.0 if row.top_p is None else row.top_p,
        "response_format": row.response_format or "auto",
    }
