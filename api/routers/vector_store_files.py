"""/vector_stores/{id}/files and /file_batches: attach, list, update, remove, cancel."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.deps import ProjectDep, SessionDep, SettingsDep, StorageDep, TemporalDep
from api.errors import not_found
from api.ids import FileBatchId, FileId, VectorStoreId
from api.lookups import ensure_files
from api.pagination import ListQuery, paginate
from api.routers.vector_stores import load_vector_store
from api.schemas.common import Deleted, ListResponse
from api.schemas.vector_stores import (
    ContentPage,
    CreateFileBatch,
    CreateVectorStoreFile,
    FileBatchObject,
    UpdateVectorStoreFile,
    VectorStoreFileObject,
)
from api.services import ingestion
from core import ids
from core.storage import parsed_text_key
from core.tables import FileBatchRow, VectorStoreFileRow
from core.vector_stores import batch_counts, file_batch_to_wire, touch, vector_store_file_to_wire

router = APIRouter(prefix="/vector_stores/{vector_store_id}", tags=["vector_stores"])
StatusFilter = Annotated[Literal["in_progress", "completed", "failed", "cancelled"] | None,
                         Query()]
# Polling hint the SDK's *_and_poll helpers honour (`openai-poll-after-ms`):
# our ingestion takes well under a second for small files.
POLL_HEADERS = {"openai-poll-after-ms": "200"}


async def load_store_file(session: AsyncSession, project: str, vector_store_id: str,
                          file_id: str) -> VectorStoreFileRow:
    await load_vector_store(session, project, vector_store_id)
    row = await session.get(VectorStoreFileRow, (vector_store_id, file_id))
    if row is None:
        raise not_found("vector store file", file_id)
    return row


async def load_batch(session: AsyncSession, project: str, vector_store_id: str,
                     batch_id: str) -> FileBatchRow:
    await load_vector_store(session, project, vector_store_id)
    row = await session.get(FileBatchRow, batch_id)
    if row is None or row.vector_store_id != vector_store_id:
        raise not_found("file batch", batch_id)
    return row


async def batch_to_wire(session: AsyncSession, row: FileBatchRow) -> dict[str, Any]:
    return file_batch_to_wire(row, (await batch_counts(session, [row.id]))[row.id])


# --- files -------------------------------------------------------------------
@router.post("/files", response_model=VectorStoreFileObject)
async def create_vector_store_file(
    vector_store_id: VectorStoreId, body: CreateVectorStoreFile, session: SessionDep,
    temporal: TemporalDep, settings: SettingsDep, project: ProjectDep,
) -> dict[str, Any]:
    store = await load_vector_store(session, project, vector_store_id, lock=True)
    await ensure_files(session, project, [body.file_id])
    [row] = await ingestion.attach_files(session, vector_store_id, [body])
    touch(store)
    await session.commit()
    await ingestion.start(session, temporal, settings, [row])
    return vector_store_file_to_wire(row)


@router.get("/files", response_model=ListResponse[VectorStoreFileObject])
async def list_vector_store_files(
    vector_store_id: VectorStoreId, params: ListQuery, session: SessionDep,
    project: ProjectDep, filter: StatusFilter = None,
) -> dict[str, Any]:
    await load_vector_store(session, project, vector_store_id)
    filters = [col(VectorStoreFileRow.vector_store_id) == vector_store_id]
    if filter is not None:
        filters.append(col(VectorStoreFileRow.status) == filter)
    return await paginate(session, VectorStoreFileRow, params, vector_store_file_to_wire,
                          *filters)


@router.get("/files/{file_id}", response_model=VectorStoreFileObject)
async def retrieve_vector_store_file(
    vector_store_id: VectorStoreId, file_id: FileId, session: SessionDep, response: Response,
    project: ProjectDep,
) -> dict[str, Any]:
    row = await load_store_file(session, project, vector_store_id, file_id)
    if row.status == "in_progress":
        response.headers.update(POLL_HEADERS)
    return vector_store_file_to_wire(row)


@router.post("/files/{file_id}", response_model=VectorStoreFileObject)
async def update_vector_store_file(
    vector_store_id: VectorStoreId, file_id: FileId, body: UpdateVectorStoreFile,
    session: SessionDep, project: ProjectDep,
) -> dict[str, Any]:
    row = await load_store_file(session, project, vector_store_id, file_id)
    # Attributes live on the row, not the chunks: search filters see them at once.
    row.attributes = body.attributes or {}
    session.add(row)
    await session.commit()
    return vector_store_file_to_wire(row)


@router.delete("/files/{file_id}", response_model=Deleted)
async def delete_vector_store_file(
    vector_store_id: VectorStoreId, file_id: FileId, session: SessionDep, project: ProjectDep,
) -> dict[str, Any]:
    """Detaches the file (its chunks cascade); the file itself stays in /files."""
    row = await load_store_file(session, project, vector_store_id, file_id)
    await session.delete(row)
    await session.commit()
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


@router.get("/files/{file_id}/content", response_model=ContentPage)
async def vector_store_file_content(
    vector_store_id: VectorStoreId, file_id: FileId, session: SessionDep, storage: StorageDep,
    project: ProjectDep,
) -> dict[str, Any]:
    row = await load_store_file(session, project, vector_store_id, file_id)
    data = []
    if row.status == "completed":
        text = (await storage.get(parsed_text_key(file_id))).decode()
        data.append({"type": "text", "text": text})
    return {"object": "vector_store.file_content.page", "data": data, "has_more": False,
            "next_page": None}


# --- batches -----------------------------------------------------------------
@router.post("/file_batches", response_model=FileBatchObject)
async def create_file_batch(
    vector_store_id: VectorStoreId, body: CreateFileBatch, session: SessionDep,
    temporal: TemporalDep, settings: SettingsDep, project: ProjectDep,
) -> dict[str, Any]:
    store = await load_vector_store(session, project, vector_store_id, lock=True)
    entries = body.entries()
    await ensure_files(session, project, [entry.file_id for entry in entries])
    batch = FileBatchRow(id=ids.new_id(ids.FILE_BATCH), vector_store_id=vector_store_id,
                         created_at=int(time.time()))
    session.add(batch)
    await session.flush()
    rows = await ingestion.attach_files(session, vector_store_id, entries, batch.id)
    touch(store)
    await session.commit()
    await ingestion.start(session, temporal, settings, rows)
    return await batch_to_wire(session, batch)


@router.get("/file_batches/{batch_id}", response_model=FileBatchObject)
async def retrieve_file_batch(
    vector_store_id: VectorStoreId, batch_id: FileBatchId, session: SessionDep,
    response: Response, project: ProjectDep,
) -> dict[str, Any]:
    batch = await load_batch(session, project, vector_store_id, batch_id)
    wire = await batch_to_wire(session, batch)
    if wire["status"] == "in_progress":
        response.headers.update(POLL_HEADERS)
    return wire


@router.post("/file_batches/{batch_id}/cancel", response_model=FileBatchObject)
async def cancel_file_batch(
    vector_store_id: VectorStoreId, batch_id: FileBatchId, session: SessionDep,
    temporal: TemporalDep, project: ProjectDep,
) -> dict[str, Any]:
    """Files still in progress become cancelled now; finished ones keep their status."""
    batch = await load_batch(session, project, vector_store_id, batch_id)
    batch.status = "cancelled"
    session.add(batch)
    cancelled = (await session.scalars(
        update(VectorStoreFileRow)
        .where(col(VectorStoreFileRow.batch_id) == batch_id,
               col(VectorStoreFileRow.status) == "in_progress")
        .values(status="cancelled")
        .returning(VectorStoreFileRow))).all()
    await session.commit()
    await ingestion.cancel(temporal, list(cancelled))
    return await batch_to_wire(session, batch)


@router.get("/file_batches/{batch_id}/files",
            response_model=ListResponse[VectorStoreFileObject])
async def list_file_batch_files(
    vector_store_id: VectorStoreId, batch_id: FileBatchId, params: ListQuery,
    session: SessionDep, project: ProjectDep, filter: StatusFilter = None,
) -> dict[str, Any]:
    await load_batch(session, project, vector_store_id, batch_id)
    filters = [col(VectorStoreFileRow.vector_store_id) == vector_store_id,
               col(VectorStoreFileRow.batch_id) == batch_id]
    if filter is not None:
        filters.append(col(VectorStoreFileRow.status) == filter)
    return await paginate(session, VectorStoreFileRow, params, vector_store_file_to_wire,
                          *filters)
