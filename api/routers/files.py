"""/files: upload (multipart), list, retrieve, delete, content. Bytes live in S3."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.deps import ProjectDep, SessionDep, SettingsDep, StorageDep
from api.errors import ApiError, invalid
from api.ids import FileId
from api.pagination import ListParams, paginate
from api.schemas.common import ListResponse
from api.schemas.files import FileDeleted, FileObject, Purpose, file_to_wire
from core import ids
from core.storage import parsed_text_key
from core.tables import FileRow

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/files", tags=["files"])


async def load_file(session: AsyncSession, project: str, file_id: str) -> FileRow:
    row = await session.get(FileRow, file_id)
    if (row is None or row.project_id != project
            or (row.expires_at is not None and row.expires_at <= time.time())):
        # OpenAI's wording for /files (other routes name a missing file as they name
        # any missing object).
        raise ApiError(404, f"No such File object: {file_id}", param="id")
    return row


@router.post("", response_model=FileObject)
async def upload_file(
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    project: ProjectDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[Purpose, Form()],
    # OpenAI's multipart spelling of the nested `expires_after` object.
    expires_anchor: Annotated[Literal["created_at"] | None,
                              Form(alias="expires_after[anchor]")] = None,
    expires_seconds: Annotated[int | None, Form(alias="expires_after[seconds]", ge=3600,
                                                le=2_592_000)] = None,
) -> dict[str, Any]:
    # Starlette has spooled the upload to disk, so its size is known and
    # nothing large sits in memory when we refuse it.
    size = file.size if file.size is not None else len(await file.read())
    if size > settings.max_file_bytes:
        raise invalid(f"File is too large: {size} bytes. The maximum file size is "
                      f"{settings.max_file_bytes} bytes.", "file", "file_too_large")
    if (expires_anchor is None) != (expires_seconds is None):
        raise invalid("'expires_after' needs both 'anchor' and 'seconds'.", "expires_after")
    now = int(time.time())
    file_id = ids.new_file_id()
    row = FileRow(
        id=file_id, project_id=project, created_at=now, bytes=size,
        filename=(file.filename or "upload").rsplit("/", 1)[-1],
        purpose=purpose, content_type=file.content_type or "application/octet-stream",
        storage_key=f"files/{file_id}",
        expires_at=now + expires_seconds if expires_seconds is not None else None,
    )
    await file.seek(0)
    # Bytes first: a row never names an object that is not in S3.
    await storage.put_fileobj(row.storage_key, file.file, row.content_type)
    session.add(row)
    await session.commit()
    return file_to_wire(row)


@router.get("", response_model=ListResponse[FileObject])
async def list_files(
    session: SessionDep,
    project: ProjectDep,
    purpose: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    expires_at = col(FileRow.expires_at)
    filters = [col(FileRow.project_id) == project,
               or_(expires_at.is_(None), expires_at > int(time.time()))]
    if purpose is not None:
        filters.append(col(FileRow.purpose) == purpose)
    return await paginate(session, FileRow, ListParams(limit, order, after, None),
                          file_to_wire, *filters)


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: FileId, session: SessionDep,
                        project: ProjectDep) -> dict[str, Any]:
    return file_to_wire(await load_file(session, project, file_id))


@router.get("/{file_id}/content", response_class=Response)
async def file_content(file_id: FileId, session: SessionDep, storage: StorageDep,
                       project: ProjectDep) -> Response:
    row = await load_file(session, project, file_id)
    data = await storage.get(row.storage_key)
    return Response(data, media_type=row.content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(row.filename)}"})


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: FileId, session: SessionDep, storage: StorageDep,
                      project: ProjectDep) -> dict[str, Any]:
    """Also removes the file from every vector store (rows and chunks cascade)."""
    row = await load_file(session, project, file_id)
    await session.delete(row)
    await session.commit()
    for key in (row.storage_key, parsed_text_key(file_id)):
        # The record is gone; a leftover object is only wasted space.
        with contextlib.suppress(Exception):
            await storage.delete(key)
    return {"id": file_id, "object": "file", "deleted": True}
