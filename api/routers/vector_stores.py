"""/vector_stores: create, list, retrieve, modify, delete, and search."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.deps import EmbedderDep, ProjectDep, SessionDep, SettingsDep, TemporalDep
from api.errors import invalid, not_found
from api.ids import VectorStoreId
from api.pagination import ListQuery, paginate
from api.schemas.common import Deleted, ListResponse
from api.schemas.vector_stores import (
    CreateVectorStore,
    ModifyVectorStore,
    SearchResultsPage,
    SearchVectorStore,
    VectorStoreObject,
)
from api.services import ingestion
from api.services.store_creation import create_store
from core import retrieval
from core.tables import VectorStoreRow
from core.vector_stores import store_counts, touch, vector_store_to_wire

router = APIRouter(prefix="/vector_stores", tags=["vector_stores"])


async def load_vector_store(session: AsyncSession, project: str, vector_store_id: str,
                            *, lock: bool = False) -> VectorStoreRow:
    row = await session.get(VectorStoreRow, vector_store_id, with_for_update=lock)
    if row is None or row.project_id != project:
        raise not_found("vector store", vector_store_id)
    return row


async def store_to_wire(session: AsyncSession, row: VectorStoreRow) -> dict[str, Any]:
    counts = await store_counts(session, [row.id])
    return vector_store_to_wire(row, counts[row.id])


@router.post("", response_model=VectorStoreObject)
async def create_vector_store(
    body: CreateVectorStore, session: SessionDep, temporal: TemporalDep, settings: SettingsDep,
    project: ProjectDep,
) -> dict[str, Any]:
    row, files = await create_store(
        session, project, file_ids=body.file_ids, chunking_strategy=body.chunking_strategy,
        name=body.name or "", description=body.description,
        expires_after=body.expires_after.model_dump() if body.expires_after else None,
        metadata=body.metadata)
    await session.commit()
    await ingestion.start(session, temporal, settings, files)
    return await store_to_wire(session, row)


@router.get("", response_model=ListResponse[VectorStoreObject])
async def list_vector_stores(params: ListQuery, session: SessionDep,
                             project: ProjectDep) -> dict[str, Any]:
    page = await paginate(session, VectorStoreRow, params, lambda row: {"id": row.id, "row": row},
                          col(VectorStoreRow.project_id) == project)
    counts = await store_counts(session, [item["id"] for item in page["data"]])
    page["data"] = [vector_store_to_wire(item["row"], counts[item["id"]])
                    for item in page["data"]]
    return page


@router.get("/{vector_store_id}", response_model=VectorStoreObject)
async def retrieve_vector_store(vector_store_id: VectorStoreId,
                                session: SessionDep, project: ProjectDep) -> dict[str, Any]:
    return await store_to_wire(session, await load_vector_store(session, project,
                                                                vector_store_id))


@router.post("/{vector_store_id}", response_model=VectorStoreObject)
async def modify_vector_store(
    vector_store_id: VectorStoreId, body: ModifyVectorStore, session: SessionDep,
    project: ProjectDep,
) -> dict[str, Any]:
    row = await load_vector_store(session, project, vector_store_id, lock=True)
    changes = body.model_fields_set
    if "name" in changes:
        row.name = body.name or ""
    if "metadata" in changes:
        row.metadata_ = body.metadata or {}
    if "expires_after" in changes:
        row.expires_after = body.expires_after.model_dump() if body.expires_after else None
    touch(row)
    session.add(row)
    await session.commit()
    return await store_to_wire(session, row)


@router.delete("/{vector_store_id}", response_model=Deleted)
async def delete_vector_store(vector_store_id: VectorStoreId,
                              session: SessionDep, project: ProjectDep) -> dict[str, Any]:
    """Files, batches and chunks cascade; running ingestions find their row gone and stop."""
    row = await load_vector_store(session, project, vector_store_id)
    await session.delete(row)
    await session.commit()
    return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}


@router.post("/{vector_store_id}/search", response_model=SearchResultsPage)
async def search_vector_store(
    vector_store_id: VectorStoreId, body: SearchVectorStore, session: SessionDep,
    embedder: EmbedderDep, project: ProjectDep,
) -> dict[str, Any]:
    row = await load_vector_store(session, project, vector_store_id, lock=True)
    queries = [body.query] if isinstance(body.query, str) else body.query
    if not any(q.strip() for q in queries):
        raise invalid("Invalid 'query': expected a non-empty string.", "query", "invalid_value")
    threshold = body.ranking_options.score_threshold if body.ranking_options else 0.0
    try:
        results = await retrieval.search(session, [row.id], queries, body.max_num_results,
                                         threshold, body.filters, embedder=embedder)
    except ValueError as error:  # a filter the schema let through but SQL cannot express
        raise invalid(f"Invalid 'filters': {error}.", "filters", "invalid_value") from None
    touch(row)
    session.add(row)
    await session.commit()
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": [{"file_id": r.file_id, "filename": r.filename, "score": r.score,
                  "attributes": r.attributes or {},
                  "content": [{"type": "text", "text": r.text}]} for r in results],
        "has_more": False,
        "next_page": None,
    }
