"""`tool_resources` as assistant and thread creation take them: with the `vector_stores` helper.

`tool_resources.file_search.vector_stores: [{"file_ids", "chunking_strategy", "metadata"}]`
asks for a new vector store holding those files, attached in place of `vector_store_ids`
(api/services/store_creation.py makes it). Modify and runs take plain `ToolResources`
(api/schemas/common.py), as OpenAI's spec does. This lives apart from common.py because
the chunking strategy is a vector-store shape, and that module imports common.py.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from api.schemas.common import FileSearchResources, Metadata, Request, ToolResources
from api.schemas.vector_stores import ChunkingStrategy

# OpenAI's limit for stores made before Nov 2025 (the spec's figure for newer stores,
# 100,000,000, is no bound a single request could honour).
MAX_HELPER_FILES = 10_000


class VectorStoreHelper(Request):
    file_ids: list[str] = Field(default_factory=list, max_length=MAX_HELPER_FILES)
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class CreateFileSearchResources(FileSearchResources):
    # At most one store per assistant or thread, whichever way it is given.
    vector_stores: list[VectorStoreHelper] | None = Field(default=None, max_length=1)

    @model_validator(mode="after")
    def _ids_or_helper(self) -> CreateFileSearchResources:
        # The spec's `oneOf: [required: [vector_store_ids], required: [vector_stores]]`
        # (an explicit null helper counts as absent, as clients send unset fields so).
        if "vector_store_ids" in self.model_fields_set and self.vector_stores is not None:
            raise PydanticCustomError(
                "oai_invalid_value",
                "Invalid 'tool_resources.file_search': provide either 'vector_store_ids' or "
                "'vector_stores', not both.")
        return self


class CreateToolResources(ToolResources):
    file_search: CreateFileSearchResources | None = None
