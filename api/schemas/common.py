"""Shapes shared by several resources: metadata, tools, response formats, lists."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_VALUE_LENGTH = 512


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_METADATA_KEYS:
        raise PydanticCustomError(
            "oai_object_above_max_properties",
            f"Invalid 'metadata': too many properties. Expected an object with at most "
            f"{MAX_METADATA_KEYS} properties, but got an object with {len(value)} properties "
            "instead.",
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise PydanticCustomError(
                "oai_string_above_max_length",
                f"Invalid 'metadata': key '{key[:20]}…' is too long. Expected a key with maximum "
                f"length {MAX_METADATA_KEY_LENGTH}, but got a key with length {len(key)} instead.",
            )
        if len(item) > MAX_METADATA_VALUE_LENGTH:
            raise PydanticCustomError(
                "oai_string_above_max_length",
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                f"length {MAX_METADATA_VALUE_LENGTH}, but got a string with length {len(item)} "
                "instead.",
            )
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]


class Request(BaseModel):
    """Request bodies reject unknown fields, as OpenAI does (`unknown_parameter`)."""

    model_config = ConfigDict(extra="forbid")


class WireObject(BaseModel):
    """Response objects: OpenAI's fields, in OpenAI's order, nothing else."""

    model_config = ConfigDict(extra="forbid")


# --- tools -------------------------------------------------------------------
class FunctionDefinition(Request):
    name: str = Field(max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


class RankingOptions(Request):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: float = Field(ge=0, le=1)


class FileSearchSettings(Request):
    max_num_results: int | None = Field(default=None, ge=1, le=50)
    ranking_options: RankingOptions | None = None


class FileSearchTool(Request):
    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


class CodeInterpreterTool(Request):
    type: Literal["code_interpreter"]


Tool = Annotated[FunctionTool | FileSearchTool | CodeInterpreterTool, Field(discriminator="type")]
Tools = Annotated[list[Tool], Field(max_length=128)]


def tools_to_wire(tools: list[Any] | None) -> list[dict[str, Any]]:
    """Stored form of a tool list: what OpenAI echoes back."""
    wire = []
    for tool in tools or []:
        data = tool.model_dump(exclude_none=True)
        if data["type"] == "function":
            data["function"].setdefault("parameters", {"type": "object", "properties": {}})
            data["function"].setdefault("strict", False)
        wire.append(data)
    return wire


# --- tool resources ----------------------------------------------------------
class CodeInterpreterResources(Request):
    file_ids: list[str] = Field(default_factory=list, max_length=20)


class FileSearchResources(Request):
    vector_store_ids: list[str] = Field(default_factory=list, max_length=1)


class ToolResources(Request):
    """What modify and runs take; creation also takes the `vector_stores` helper
    (api/schemas/tool_resources.py)."""

    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


def tool_resources_to_wire(resources: ToolResources | None) -> dict[str, Any] | None:
    """Stored form; the `vector_stores` helper is never stored (api/services/store_creation.py turns
    it into a store id)."""
    if resources is None:
        return None
    return resources.model_dump(exclude_none=True, exclude={"file_search": {"vector_stores"}})


def merge_tool_resources(stored: dict[str, Any] | None,
                         update: ToolResources | None) -> dict[str, Any] | None:
    """Modify's tool_resources: each field given replaces the stored one, the rest stay.

    Clients resend what they hold (agency-swarm sends `{"file_search": {}}` on every start):
    that must not detach the assistant's vector store. A field given explicitly, even
    empty (`"vector_store_ids": []`), replaces; `tool_resources: null` clears them all."""
    if update is None:
        return None
    merged = {tool: dict(fields) for tool, fields in (stored or {}).items()}
    for tool in update.model_fields_set:
        given = getattr(update, tool)
        if given is None:
            merged.pop(tool, None)
        else:
            merged.setdefault(tool, {}).update(given.model_dump(include=given.model_fields_set))
    return merged


# --- response formats --------------------------------------------------------
class JsonSchemaFormat(Request):
    name: str = Field(max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(Request):
    type: Literal["text"]


class ResponseFormatJsonObject(Request):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(Request):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = (
    Literal["auto"]
    | Annotated[
        ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema,
        Field(discriminator="type"),
    ]
)


def response_format_to_wire(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return value.model_dump(exclude_none=True, by_alias=True)


# --- lists -------------------------------------------------------------------
T = TypeVar("T")


class ListResponse(WireObject, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class Deleted(WireObject):
    id: str
    object: str
    deleted: bool
