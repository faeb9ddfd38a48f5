"""Every id a request refers to is checked against the caller's project when it is written.

Files and vector stores named in a request body — `tool_resources` (code_interpreter
`file_ids`, file_search `vector_store_ids`, the `vector_stores` helper's `file_ids`),
and in each message it creates (attachments, `image_file` content parts) — must be
objects of the caller's project: a missing one and another project's one are the
same 404 ("No file found with id '…'.", as for any object), and nothing is written.
Every route that writes them calls `ensure` on its whole body, so the rule lives here
once. Runs still check again when they use them (a store or file deleted since).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import ApiError
from api.schemas.common import ToolResources
from api.schemas.messages import CreateMessage, ImageFilePart
from core.tables import FileRow, VectorStoreRow

Kind = Literal["file", "vector store"]
# Fields of request bodies that hold references, wherever they appear: CreateThread
# (messages, tool_resources), CreateRun (additional_messages), CreateThreadAndRun
# (thread, tool_resources), assistants' create and modify (tool_resources).
_NESTED = ("thread", "messages", "additional_messages", "tool_resources")


@dataclass(frozen=True)
class Reference:
    kind: Kind
    id: str
    param: str  # where the request names it, e.g. "messages[0].attachments[1].file_id"


def _of_message(message: CreateMessage, at: str) -> list[Reference]:
    refs: list[Reference] = []
    if not isinstance(message.content, str):
        for index, part in enumerate(message.content):
            if isinstance(part, ImageFilePart):
                refs.append(Reference("file", part.image_file.file_id,
                                      f"{at}content[{index}].image_file.file_id"))
    for index, attachment in enumerate(message.attachments or []):
        # Whatever its tools: a code_interpreter file is a reference too.
        refs.append(Reference("file", attachment.file_id, f"{at}attachments[{index}].file_id"))
    return refs


def _of_tool_resources(resources: ToolResources, at: str) -> list[Reference]:
    refs: list[Reference] = []
    if resources.code_interpreter is not None:
        refs += [Reference("file", file_id, f"{at}code_interpreter.file_ids[{index}]")
                 for index, file_id in enumerate(resources.code_interpreter.file_ids)]
    file_search = resources.file_search
    if file_search is not None:
        refs += [Reference("vector store", store_id,
                           f"{at}file_search.vector_store_ids[{index}]")
                 for index, store_id in enumerate(file_search.vector_store_ids)]
        # Only creation's resources have the helper (api/schemas/tool_resources.py).
        for index, helper in enumerate(getattr(file_search, "vector_stores", None) or []):
            refs += [Reference("file", file_id,
                               f"{at}file_search.vector_stores[{index}].file_ids[{number}]")
                     for number, file_id in enumerate(helper.file_ids)]
    return refs


def collect(body: BaseModel | None, at: str = "") -> list[Reference]:
    """The references in a request body (or part of one), in a stable order."""
    if body is None:
        return []
    if isinstance(body, CreateMessage):
        return _of_message(body, at)
    if isinstance(body, ToolResources):
        return _of_tool_resources(body, at)
    refs: list[Reference] = []
    for name in _NESTED:
        value = getattr(body, name, None)
        if isinstance(value, list):
            for index, item in enumerate(value):
                refs += collect(item, f"{at}{name}[{index}].")
        elif isinstance(value, BaseModel):
            refs += collect(value, f"{at}{name}.")
    return refs


async def _known(session: AsyncSession, table: type[FileRow] | type[VectorStoreRow],
                 project: str, wanted: Iterable[str]) -> set[str]:
    ids = list(dict.fromkeys(wanted))
    if not ids:
        return set()
    return set((await session.scalars(select(col(table.id)).where(
        col(table.id).in_(ids), col(table.project_id) == project))).all())


async def ensure(session: AsyncSession, project: str, body: BaseModel | None) -> None:
    """404 for the first reference in `body` that is not an object of `project`."""
    refs = collect(body)
    if not refs:
        return
    known = {
        "file": await _known(session, FileRow, project,
                             (ref.id for ref in refs if ref.kind == "file")),
        "vector store": await _known(session, VectorStoreRow, project,
                                     (ref.id for ref in refs if ref.kind == "vector store")),
    }
    for ref in refs:
        if ref.id not in known[ref.kind]:
            # The wording of every other 404 (api/errors.py `not_found`), with the param.
            raise ApiError(404, f"No {ref.kind} found with id '{ref.id}'.", param=ref.param)
