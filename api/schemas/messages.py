"""Message objects and requests."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

from api.schemas.common import Metadata, Request, WireObject

# A scheme and something after it. OpenAI refuses an empty or scheme-less URL with a 400 (its
# spec: `format: uri`); which schemes work (http(s), data:) is the model provider's to decide.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")


def _check_url(value: str) -> str:
    if not _URL.match(value):
        raise PydanticCustomError("invalid_url", "Expected a valid URL")  # errors.py words it
    return value


class ImageUrl(Request):
    url: Annotated[str, AfterValidator(_check_url)]
    detail: Literal["auto", "low", "high"] = "auto"


class ImageFile(Request):
    file_id: str
    detail: Literal["auto", "low", "high"] = "auto"


class TextPart(Request):
    type: Literal["text"]
    text: str


class ImageUrlPart(Request):
    type: Literal["image_url"]
    image_url: ImageUrl


class ImageFilePart(Request):
    type: Literal["image_file"]
    image_file: ImageFile


ContentPart = Annotated[TextPart | ImageUrlPart | ImageFilePart, Field(discriminator="type")]


def _content_kind(value: Any) -> str:
    return "str" if isinstance(value, str) else "list[content-part]"


# A string or a non-empty list of parts. A plain `str | list[...]` union would
# report every bad list against its string member first ("content.str: expected
# a string"); choosing the member by the value's type reports the list's own
# error. The tag names follow pydantic's member labels, which error params omit.
Content = Annotated[
    Annotated[str, Tag("str")]
    | Annotated[list[ContentPart], Field(min_length=1), Tag("list[content-part]")],
    Discriminator(_content_kind),
]


class AttachmentTool(Request):
    type: Literal["code_interpreter", "file_search"]


class Attachment(Request):
    file_id: str
    tools: list[AttachmentTool] = Field(default_factory=list)


class CreateMessage(Request):
    role: Literal["user", "assistant"]
    content: Content
    attachments: list[Attachment] | None = None
    metadata: Metadata | None = None


class ModifyMessage(Request):
    metadata: Metadata | None = None


class MessageObject(WireObject):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: Literal["in_progress", "incomplete", "completed"]
    incomplete_details: dict[str, Any] | None
    completed_at: int | None
    incomplete_at: int | None
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]]
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]] | None
    metadata: dict[str, str]


def content_to_wire(content: str | list[Any]) -> list[dict[str, Any]]:
    """Request content (a string or parts) in the stored/response form."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if part.type == "text":
            parts.append({"type": "text", "text": {"value": part.text, "annotations": []}})
        else:
            parts.append(part.model_dump())
    return parts


def attachments_to_wire(attachments: list[Attachment] | None) -> list[dict[str, Any]]:
    return [a.model_dump() for a in attachments or []]
