"""Ingestion activities: file bytes from S3 -> text -> chunks -> embeddings -> Postgres.

`ingest_file` is idempotent: it replaces the file's chunks and marks it
completed in one transaction, and only while the row still belongs to this
attempt (same ingest_id, still in_progress). A retry, or a workflow whose file
was meanwhile removed, cancelled or re-added, therefore writes nothing wrong.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from core.chunking import Chunk, chunk_text
from core.embeddings import BATCH_SIZE, Embedder, EmbeddingError
from core.parsing import ParseError, extract_text
from core.storage import ObjectStorage, parsed_text_key
from core.tables import ChunkRow, FileRow, VectorStoreFileRow
from core.vector_stores import fail_ingestion
from workflows.ingest_types import FailIngestInput, IngestInput, IngestResult
from workflows.types import ERROR_TYPES


class IngestActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], storage: ObjectStorage,
                 embedder: Embedder | None) -> None:
        self._sessions = sessions
        self._storage = storage
        self._embedder = embedder

    @activity.defn(name="ingest_file")
    async def ingest_file(self, input: IngestInput) -> IngestResult:
        async with self._sessions() as session:
            row = await session.get(VectorStoreFileRow, (input.vector_store_id, input.file_id))
            file = await session.get(FileRow, input.file_id)
        if file is None or not _is_current(row, input):
            return IngestResult("abandoned")
        assert row is not None
        async with heartbeating():
            data = await self._storage.get(file.storage_key)
            try:
                text = await asyncio.to_thread(extract_text, file.filename, data)
            except ParseError as error:
                raise ApplicationError(error.message, type=ERROR_TYPES[error.code],
                                       non_retryable=True) from None
            static = row.chunking_strategy["static"]
            chunks = chunk_text(text, static["max_chunk_size_tokens"],
                                static["chunk_overlap_tokens"])
            vectors = await self._embed(chunks)
            await self._storage.put(parsed_text_key(file.id), text.encode(),
                                    "text/plain; charset=utf-8")
        written = await self._store(input, chunks, vectors, usage_bytes=len(text.encode()))
        return IngestResult("completed", len(chunks)) if written else IngestResult("abandoned")

    @activity.defn(name="fail_ingest")
    async def fail_ingest(self, input: FailIngestInput) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(fail_ingestion(input.vector_store_id, input.file_id,
                                                 input.ingest_id, input.last_error))

    async def _embed(self, chunks: list[Chunk]) -> list[list[float]] | None:
        if self._embedder is None:
            return None
        vectors: list[list[float]] = []
        for start in range(0, len(chunks), BATCH_SIZE):
            batch = [chunk.text for chunk in chunks[start:start + BATCH_SIZE]]
            try:
                vectors += await self._embedder.embed(batch)
            except EmbeddingError as error:
                raise ApplicationError(error.message, type="EmbeddingFailed",
                                       non_retryable=not error.retryable) from None
        return vectors

    async def _store(self, input: IngestInput, chunks: list[Chunk],
                     vectors: list[list[float]] | None, usage_bytes: int) -> bool:
        """Replace the file's chunks and complete it, if the row is still ours."""
        model = self._embedder.model if self._embedder and vectors is not None else None
        async with self._sessions() as session, session.begin():
            # The row lock orders us against deletes and cancels of this file.
            row = (await session.scalars(
                select(VectorStoreFileRow)
                .where(col(VectorStoreFileRow.vector_store_id) == input.vector_store_id,
                       col(VectorStoreFileRow.id) == input.file_id)
                .with_for_update())).first()
            if not _is_current(row, input):
                return False
            await session.execute(delete(ChunkRow).where(
                col(ChunkRow.vector_store_id) == input.vector_store_id,
                col(ChunkRow.file_id) == input.file_id))
            values: list[dict[str, Any]] = [
                {"vector_store_id": input.vector_store_id, "file_id": input.file_id,
                 "chunk_index": chunk.index, "text": chunk.text,
                 "token_count": chunk.token_count, "embedding_model": model,
                 "embedding": vectors[chunk.index] if vectors is not None else None}
                for chunk in chunks
            ]
            if values:
                await session.execute(insert(ChunkRow), values)
            await session.execute(
                update(VectorStoreFileRow)
                .where(col(VectorStoreFileRow.vector_store_id) == input.vector_store_id,
                       col(VectorStoreFileRow.id) == input.file_id)
                .values(status="completed", last_error=None, usage_bytes=usage_bytes))
        return True


def _is_current(row: VectorStoreFileRow | None, input: IngestInput) -> bool:
    return row is not None and row.ingest_id == input.ingest_id and row.status == "in_progress"
