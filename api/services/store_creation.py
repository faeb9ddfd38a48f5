"""Making vector stores: `POST /vector_stores`, and the `tool_resources` helper.

`tool_resources.file_search.vector_stores` on assistant and thread creation (also the
`thread` of create-thread-and-run) makes one store per entry, in the caller's project,
with the entry's files attached exactly as `POST /vector_stores` attaches them: the
same `create_store`, ingested by the same durable `IngestVectorStoreFile` workflows
(api/services/ingestion.py). The new store's id goes into `vector_store_ids`.

A thread's helper store expires like the store message attachments make for a thread
(7 days after its last activity), as OpenAI does for stores made by thread helpers;
an assistant's does not expire.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.lookups import ensure_files
from api.schemas.common import tool_resources_to_wire
from api.schemas.tool_resources import CreateToolResources
from api.schemas.vector_stores import ChunkingStrategy, CreateVectorStoreFile
from api.services import ingestion
from api.services.attachments import THREAD_STORE_EXPIRY, THREAD_STORE_NAME
from core import ids
from core.tables import VectorStoreFileRow, VectorStoreRow
from core.vector_stores import touch


async def create_store(
    session: AsyncSession, project: str, *, file_ids: list[str],
    chunking_strategy: ChunkingStrategy | None = None, name: str = "",
    description: str | None = None, expires_after: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[VectorStoreRow, list[VectorStoreFileRow]]:
    """Add a store with `file_ids` attached in_progress; 404 for a file not of `project`.
    The caller commits, then starts the returned rows with `ingestion.start`."""
    await ensure_files(session, project, file_ids)
    row = VectorStoreRow(
        id=ids.new_id(ids.VECTOR_STORE), project_id=project, created_at=int(time.time()),
        name=name, description=description, expires_after=expires_after,
        metadata_=metadata or {})
    touch(row, row.created_at)
    session.add(row)
    await session.flush()  # the files' foreign key needs the store row first
    entries = [CreateVectorStoreFile(file_id=file_id, chunking_strategy=chunking_strategy)
               for file_id in file_ids]
    files = await ingestion.attach_files(session, row.id, entries)
    return row, files


def helper_requested(resources: CreateToolResources | None) -> bool:
    """Whether `resources` ask for a new store (even an empty one)."""
    file_search = resources.file_search if resources else None
    return bool(file_search and file_search.vector_stores)


async def apply_helper(
    session: AsyncSession, project: str, resources: CreateToolResources | None, *,
    for_thread: bool,
) -> tuple[dict[str, Any] | None, list[VectorStoreFileRow]]:
    """The stored form of `resources`, with a new store per helper entry in
    `vector_store_ids`, and the files to start ingesting once the caller has committed."""
    wire = tool_resources_to_wire(resources)
    if resources is None or not helper_requested(resources):
        return wire, []
    assert wire is not None and resources.file_search is not None  # helper_requested
    store_ids: list[str] = []
    ingesting: list[VectorStoreFileRow] = []
    for entry in resources.file_search.vector_stores or []:
        store, files = await create_store(
            session, project, file_ids=entry.file_ids,
            chunking_strategy=entry.chunking_strategy,
            name=THREAD_STORE_NAME if for_thread else "",
            expires_after=dict(THREAD_STORE_EXPIRY) if for_thread else None,
            metadata=entry.metadata)
        store_ids.append(store.id)
        ingesting += files
    wire["file_search"] = {**wire.get("file_search", {}), "vector_store_ids": store_ids}
    return wire, ingesting
