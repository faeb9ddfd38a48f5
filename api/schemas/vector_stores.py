"""Vector stores, their files and batches, and search: requests and response objects."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from api.schemas.common import Metadata, Request, WireObject
from core.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS

MAX_ATTRIBUTES = 16
COMPARISONS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})


def _fail(message: str, code: str = "invalid_value") -> PydanticCustomError:
    return PydanticCustomError(f"oai_{code}", message)


def _check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_ATTRIBUTES:
        raise _fail(f"Invalid 'attributes': too many properties. Expected at most "
                    f"{MAX_ATTRIBUTES}, but got {len(value)}.")
    for key, item in value.items():
        if len(key) > 64:
            raise _fail(f"Invalid 'attributes': key '{key[:20]}…' is longer than 64 characters.")
        if isinstance(item, str) and len(item) > 512:
            raise _fail(f"Invalid 'attributes.{key}': string longer than 512 characters.")
    return value


Attributes = Annotated[dict[str, str | bool | int | float], AfterValidator(_check_attributes)]


# Nesting bound for compound filters: validation, SQL building and compiling all recurse, and
# Python's stack is finite (OpenAI documents no limit; real filters are a level or two).
MAX_FILTER_DEPTH = 16


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), "an unknown type")


def _is_number(value: Any) -> bool:
    # bool is an int to Python, not a number to JSON; NaN and infinities (which Python's
    # JSON parser accepts) are no JSON numbers either, and jsonb refuses them.
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_filter(value: Any, path: str = "filters", depth: int = 1) -> Any:
    """OpenAI's ComparisonFilter | CompoundFilter, recursively (kept as plain JSON).

    Every member is checked for its JSON type before it is used: the parsed body holds any
    JSON value, and a `type` that is an object once reached a set lookup (TypeError, a 500).
    """
    if not isinstance(value, dict):
        raise _fail(f"Invalid type for '{path}': expected an object, but got "
                    f"{_json_type(value)} instead.", "invalid_type")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise _fail(f"Invalid type for '{path}.type': expected a string, but got "
                    f"{_json_type(kind)} instead.", "invalid_type")
    if kind in ("and", "or"):
        if set(value) - {"type", "filters"} or not isinstance(value.get("filters"), list):
            raise _fail(f"Invalid '{path}': a compound filter has 'type' and 'filters' (array).")
        if depth >= MAX_FILTER_DEPTH:
            raise _fail(f"Invalid '{path}': filters nest at most {MAX_FILTER_DEPTH} levels deep.")
        for index, item in enumerate(value["filters"]):
            _check_filter(item, f"{path}.filters[{index}]", depth + 1)
        return value
    if kind not in COMPARISONS:
        raise _fail(f"Invalid value for '{path}.type': '{kind[:40]}'. Supported values are: "
                    f"{', '.join(repr(k) for k in sorted(COMPARISONS | {'and', 'or'}))}.")
    if set(value) != {"type", "key", "value"} or not isinstance(value["key"], str):
        raise _fail(f"Invalid '{path}': a comparison filter has 'type', 'key' (a string) "
                    "and 'value'.")
    item = value["value"]
    if kind in ("in", "nin"):
        if not isinstance(item, list) or not all(
                isinstance(v, str) or _is_number(v) for v in item):
            raise _fail(f"Invalid '{path}.value': '{kind}' needs an array of strings or numbers.")
    elif not (isinstance(item, str | bool) or _is_number(item)):
        raise _fail(f"Invalid '{path}.value': expected a string, number or boolean.")
    elif kind in ("gt", "gte", "lt", "lte") and isinstance(item, bool):
        raise _fail(f"Invalid '{path}.value': '{kind}' needs a number or string.")
    return value


Filters = Annotated[dict[str, Any], AfterValidator(_check_filter)]


# --- chunking ----------------------------------------------------------------
class StaticChunking(Request):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise _fail("Invalid 'chunk_overlap_tokens': it must not exceed half of "
                        "'max_chunk_size_tokens'.")
        return self


class AutoChunkingStrategy(Request):
    type: Literal["auto"]


class StaticChunkingStrategy(Request):
    type: Literal["static"]
    static: StaticChunking


ChunkingStrategy = Annotated[AutoChunkingStrategy | StaticChunkingStrategy,
                             Field(discriminator="type")]


def chunking_to_wire(strategy: ChunkingStrategy | None) -> dict[str, Any]:
    """What a vector-store file reports: `auto` resolves to OpenAI's static default."""
    if isinstance(strategy, StaticChunkingStrategy):
        return {"type": "static", "static": strategy.static.model_dump()}
    return {"type": "static", "static": {"max_chunk_size_tokens": DEFAULT_MAX_TOKENS,
                                         "chunk_overlap_tokens": DEFAULT_OVERLAP_TOKENS}}


# --- requests ----------------------------------------------------------------
class ExpiresAfter(Request):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class CreateVectorStore(Request):
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class ModifyVectorStore(Request):
    name: str | None = Field(default=None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None


class CreateVectorStoreFile(Request):
    file_id: str
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class CreateFileBatch(Request):
    file_ids: list[str] | None = Field(default=None, min_length=1, max_length=2000)
    files: list[CreateVectorStoreFile] | None = Field(default=None, min_length=1,
                                                      max_length=2000)
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None

    @model_validator(mode="after")
    def _one_of_ids_or_files(self) -> CreateFileBatch:
        if (self.file_ids is None) == (self.files is None):
            raise _fail("Provide exactly one of 'file_ids' or 'files'.")
        return self

    def entries(self) -> list[CreateVectorStoreFile]:
        """Per-file settings; the batch-wide ones apply to `file_ids` only (OpenAI's rule)."""
        if self.files is not None:
            return self.files
        return [CreateVectorStoreFile(file_id=file_id, chunking_strategy=self.chunking_strategy,
                                      attributes=self.attributes)
                for file_id in self.file_ids or []]


class UpdateVectorStoreFile(Request):
    attributes: Attributes | None


class SearchRankingOptions(Request):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(default=0.0, ge=0, le=1)


class SearchVectorStore(Request):
    query: str | Annotated[list[str], Field(min_length=1)]
    rewrite_query: bool = False
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: Filters | None = None
    ranking_options: SearchRankingOptions | None = None


# --- responses ---------------------------------------------------------------
class FileCounts(WireObject):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStoreObject(WireObject):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: str
    expires_after: dict[str, Any] | None
    expires_at: int | None
    last_active_at: int | None
    metadata: dict[str, str]


class VectorStoreFileObject(WireObject):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: str
    last_error: dict[str, Any] | None
    chunking_strategy: dict[str, Any]
    attributes: dict[str, Any] | None


class FileBatchObject(WireObject):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: str
    file_counts: FileCounts


class ContentPage(WireObject):
    object: str
    data: list[dict[str, Any]]
    has_more: bool
    next_page: str | None


class SearchResultsPage(ContentPage):
    search_query: list[str]
