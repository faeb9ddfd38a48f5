"""Message attachments with the file_search tool go into the thread's vector store.

As OpenAI does: a file attached to a message with `tools: [{"type": "file_search"}]`
is added to the vector store named in the thread's
`tool_resources.file_search.vector_store_ids`; a thread without one gets a new
store ("thread vector store", expiring 7 days after its last activity), set on
the thread. Ingestion is the same workflow as for `/vector_stores/{id}/files`.

Used by every route that creates messages (messages.create, threads.create,
runs' `additional_messages`, createThreadAndRun): call `attach_files` after the
messages are added and before the commit, then `ingestion.start` on the rows it
returns once committed. Only file_search attachments are checked and acted on:
each must be a file of the thread's project, else 404 (nothing is written).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.schemas.messages import CreateMessage
from api.schemas.vector_stores import CreateVectorStoreFile
from api.services import ingestion
from core import ids
from core.tables import ThreadRow, VectorStoreFileRow, VectorStoreRow
from core.vector_stores import touch

THREAD_STORE_NAME = "thread vector store"
THREAD_STORE_EXPIRY = {"anchor": "last_active_at", "days": 7}


def file_search_file_ids(messages: Iterable[CreateMessage]) -> list[str]:
    """Ids of files attached for file_search, in order, without repeats."""
    found: dict[str, None] = {}
    for message in messages:
        for attachment in message.attachments or []:
            if any(tool.type == "file_search" for tool in attachment.tools):
                found.setdefault(attachment.file_id, None)
    return list(found)


async def thread_store(session: AsyncSession, thread: ThreadRow) -> VectorStoreRow:
    """The thread's vector store (locked), created and set on the thread if it has none.

    A store id on the thread that is gone (deleted) or not of the thread's project
    is replaced: the attachment must land somewhere this thread can search.
    """
    resources: dict[str, Any] = dict(thread.tool_resources or {})
    file_search: dict[str, Any] = dict(resources.get("file_search") or {})
    for store_id in file_search.get("vector_store_ids") or []:
        store = await session.get(VectorStoreRow, store_id, with_for_update=True)
        if store is not None and store.project_id == thread.project_id:
            return store
    store = VectorStoreRow(
        id=ids.new_id(ids.VECTOR_STORE), project_id=thread.project_id,
        created_at=int(time.time()), name=THREAD_STORE_NAME,
        expires_after=dict(THREAD_STORE_EXPIRY), metadata_={})
    touch(store, store.created_at)
    session.add(store)
    await session.flush()
    file_search["vector_store_ids"] = [store.id]
    resources["file_search"] = file_search
    thread.tool_resources = resources  # a new dict, so the JSONB change is seen
    session.add(thread)
    return store


async def attach_files(session: AsyncSession, thread: ThreadRow,
                       messages: Iterable[CreateMessage]) -> list[VectorStoreFileRow]:
    """Add the messages' file_search attachments to the thread's store (the caller commits,
    then starts the returned rows with `ingestion.start`). No such attachment: no-op. The
    files are the caller's to check first (`references.ensure`, which every route that adds
    messages calls on its whole body)."""
    file_ids = file_search_file_ids(messages)
    if not file_ids:
        return []
    store = await thread_store(session, thread)
    # A file already searchable (or on its way) in the store is not ingested again:
    # re-ingesting would hide it from search until done. Failed/cancelled ones retry.
    present = set((await session.scalars(select(col(VectorStoreFileRow.id)).where(
        col(VectorStoreFileRow.vector_store_id) == store.id,
        col(VectorStoreFileRow.id).in_(file_ids),
        col(VectorStoreFileRow.status).in_(("in_progress", "completed"))))).all())
    wanted = [CreateVectorStoreFile(file_id=file_id) for file_id in file_ids
              if file_id not in present]
    rows = await ingestion.attach_files(session, store.id, wanted) if wanted else []
    touch(store)
    session.add(store)
    return rows
