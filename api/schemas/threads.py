"""Thread objects and requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from api.schemas.common import Metadata, Request, ToolResources, WireObject
from api.schemas.messages import CreateMessage
from api.schemas.tool_resources import CreateToolResources


class CreateThread(Request):
    messages: list[CreateMessage] = Field(default_factory=list, max_length=32)
    tool_resources: CreateToolResources | None = None
    metadata: Metadata | None = None


class ModifyThread(Request):
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


class ThreadObject(WireObject):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    tool_resources: dict[str, Any] | None
    metadata: dict[str, str]
