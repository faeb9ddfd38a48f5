"""The API's side of ingestion: attach files to a vector store, start and cancel workflows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import not_found
from api.schemas.vector_stores import CreateVectorStoreFile, chunking_to_wire
from core.settings import Settings
from core.tables import FileRow, VectorStoreFileRow
from core.vector_stores import fail_ingestion
from workflows.ingest import IngestFileWorkflow
from workflows.ingest_types import IngestInput

logger = logging.getLogger(__name__)
# Workflow starts in flight at once for a large batch (2,000 files at most).
START_CONCURRENCY = 16


def workflow_id(row: VectorStoreFileRow) -> str:
    return f"ingest-{row.vector_store_id}-{row.id}-{row.ingest_id}"


async def attach_files(
    session: AsyncSession, vector_store_id: str, entries: list[CreateVectorStoreFile],
    batch_id: str | None = None,
) -> list[VectorStoreFileRow]:
    """Upsert in_progress rows for `entries` (the caller commits, then calls `start`).

    A file already in the store is re-ingested with its new settings, under a
    new ingest_id, so any older workflow for it finds itself superseded.
    """
    unique = list({entry.file_id: entry for entry in entries}.values())
    file_ids = [entry.file_id for entry in unique]
    known = set((await session.scalars(
        select(col(FileRow.id)).where(col(FileRow.id).in_(file_ids)))).all())
    for file_id in file_ids:
        if file_id not in known:
            raise not_found("file", file_id)
    existing = {row.id: row for row in (await session.scalars(
        select(VectorStoreFileRow).where(
            col(VectorStoreFileRow.vector_store_id) == vector_store_id,
            col(VectorStoreFileRow.id).in_(file_ids)).with_for_update())).all()}
    now = int(time.time())
    rows = []
    for entry in unique:
        row = existing.get(entry.file_id) or VectorStoreFileRow(
            vector_store_id=vector_store_id, id=entry.file_id, created_at=now,
            ingest_id="", chunking_strategy={})
        row.status, row.last_error, row.usage_bytes = "in_progress", None, 0
        row.chunking_strategy = chunking_to_wire(entry.chunking_strategy)
        row.attributes = entry.attributes or {}
        row.batch_id = batch_id
        row.ingest_id = secrets.token_hex(8)
        session.add(row)
        rows.append(row)
    await session.flush()
    return rows


async def start(session: AsyncSession, client: Client, settings: Settings,
                rows: list[VectorStoreFileRow]) -> None:
    """Start one workflow per committed row; a row whose start failed is marked failed."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def start_one(row: VectorStoreFileRow) -> str | None:
        async with gate:
            try:
                await client.start_workflow(
                    IngestFileWorkflow.run,
                    IngestInput(row.vector_store_id, row.id, row.ingest_id),
                    id=workflow_id(row),
                    task_queue=settings.temporal_task_queue,
                    static_summary=f"Ingest {row.id} into {row.vector_store_id}",
                )
            except Exception as error:  # Temporal down or refusing: report, do not hang
                logger.warning("could not start ingestion of %s: %r", row.id, error)
                return str(error) or type(error).__name__
        return None

    errors = await asyncio.gather(*(start_one(row) for row in rows))
    failed = [(row, error) for row, error in zip(rows, errors, strict=True) if error]
    for row, error in failed:
        await session.execute(fail_ingestion(
            row.vector_store_id, row.id, row.ingest_id,
            {"code": "server_error", "message": f"Ingestion could not start: {error}"}))
    if failed:
        await session.commit()
        for row, _ in failed:
            await session.refresh(row)


async def cancel(client: Client, rows: list[VectorStoreFileRow]) -> None:
    """Cancel the workflows of rows the caller already marked cancelled."""
    async def cancel_one(row: VectorStoreFileRow) -> None:
        # RPCError: the workflow already finished; its final write saw "cancelled".
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(workflow_id(row)).cancel()

    await asyncio.gather(*(cancel_one(row) for row in rows))
