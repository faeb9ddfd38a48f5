"""Path-parameter id types: a wrong prefix is a 400 before any database work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from core import ids


def _prefixed(prefix: str, param: str) -> Callable[[str], str]:
    return _checked(param, prefix, lambda value: ids.has_prefix(value, prefix))


def _checked(param: str, prefix: str, valid: Callable[[str], bool]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not valid(value):
            raise PydanticCustomError(
                "oai_invalid_value",
                f"Invalid '{param}': '{value[:80]}'. Expected an ID that begins with '{prefix}'.",
            )
        return value

    return check


AssistantId = Annotated[str, Path(), AfterValidator(_prefixed(ids.ASSISTANT, "assistant_id"))]
ThreadId = Annotated[str, Path(), AfterValidator(_prefixed(ids.THREAD, "thread_id"))]
MessageId = Annotated[str, Path(), AfterValidator(_prefixed(ids.MESSAGE, "message_id"))]
RunId = Annotated[str, Path(), AfterValidator(_prefixed(ids.RUN, "run_id"))]
StepId = Annotated[str, Path(), AfterValidator(_prefixed(ids.STEP, "step_id"))]
# `file-…` (OpenAI's, made now) and `file_…` (made by earlier releases) are both file ids.
FileId = Annotated[str, Path(), AfterValidator(_checked("file_id", ids.FILE, ids.is_file_id))]
VectorStoreId = Annotated[str, Path(),
                          AfterValidator(_prefixed(ids.VECTOR_STORE, "vector_store_id"))]
FileBatchId = Annotated[str, Path(), AfterValidator(_prefixed(ids.FILE_BATCH, "batch_id"))]
