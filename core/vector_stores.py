"""Wire shapes of vector stores, their files and batches, with counts computed on read.

file_counts, usage_bytes and status are aggregated from `vector_store_files`
each time (one grouped query per page), never stored: they cannot drift from
the files they describe, whatever order ingestion, cancels and deletes happen in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Update, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col

from core.tables import FileBatchRow, VectorStoreFileRow, VectorStoreRow

DAY_SECONDS = 86_400


def fail_ingestion(vector_store_id: str, file_id: str, ingest_id: str,
                   last_error: dict[str, Any]) -> Update:
    """Mark one ingestion attempt failed, only if it is still the current, running one: a
    cancel, a delete or a newer attempt since then wins."""
    return (update(VectorStoreFileRow)
            .where(col(VectorStoreFileRow.vector_store_id) == vector_store_id,
                   col(VectorStoreFileRow.id) == file_id,
                   col(VectorStoreFileRow.ingest_id) == ingest_id,
                   col(VectorStoreFileRow.status) == "in_progress")
            .values(status="failed", last_error=last_error))


@dataclass
class Counts:
    by_status: dict[str, int] = field(default_factory=dict)
    usage_bytes: int = 0

    def to_wire(self) -> dict[str, int]:
        statuses = ("in_progress", "completed", "failed", "cancelled")
        counts = {status: self.by_status.get(status, 0) for status in statuses}
        return {**counts, "total": sum(counts.values())}


async def counts_by(session: AsyncSession, key: Mapped[str] | Mapped[str | None],
                    values: Sequence[str]) -> dict[str, Counts]:
    """Counts of vector-store files grouped by `key` (store id or batch id)."""
    result = {value: Counts() for value in values}
    if not values:
        return result
    rows = await session.execute(
        select(key, col(VectorStoreFileRow.status), func.count(),
               func.coalesce(func.sum(col(VectorStoreFileRow.usage_bytes)), 0))
        .where(key.in_(list(values)))
        .group_by(key, col(VectorStoreFileRow.status)))
    for group, status, count, usage in rows:
        counts = result[str(group)]  # never None: the WHERE matched one of `values`
        counts.by_status[status] = int(count)
        counts.usage_bytes += int(usage)
    return result


async def store_counts(session: AsyncSession, store_ids: Sequence[str]) -> dict[str, Counts]:
    return await counts_by(session, col(VectorStoreFileRow.vector_store_id), store_ids)


async def batch_counts(session: AsyncSession, batch_ids: Sequence[str]) -> dict[str, Counts]:
    return await counts_by(session, col(VectorStoreFileRow.batch_id), batch_ids)


def touch(row: VectorStoreRow, now: int | None = None) -> None:
    """Record activity: OpenAI's expiry policy counts days from last_active_at."""
    row.last_active_at = now or int(time.time())
    if row.expires_after:
        row.expires_at = row.last_active_at + int(row.expires_after["days"]) * DAY_SECONDS
    else:
        row.expires_at = None


def is_expired(row: VectorStoreRow, now: int | None = None) -> bool:
    return row.expires_at is not None and row.expires_at <= (now or int(time.time()))


def vector_store_to_wire(row: VectorStoreRow, counts: Counts) -> dict[str, Any]:
    if is_expired(row):
        status = "expired"
    else:
        status = "in_progress" if counts.by_status.get("in_progress") else "completed"
    return {
        "id": row.id,
        "object": "vector_store",
        "created_at": row.created_at,
        "name": row.name,
        "usage_bytes": counts.usage_bytes,
        "file_counts": counts.to_wire(),
        "status": status,
        "expires_after": row.expires_after,
        "expires_at": row.expires_at,
        "last_active_at": row.last_active_at,
        "metadata": row.metadata_,
    }


def vector_store_file_to_wire(row: VectorStoreFileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "vector_store.file",
        "usage_bytes": row.usage_bytes,
        "created_at": row.created_at,
        "vector_store_id": row.vector_store_id,
        "status": row.status,
        "last_error": row.last_error,
        "chunking_strategy": row.chunking_strategy,
        "attributes": row.attributes or {},
    }


def file_batch_to_wire(row: FileBatchRow, counts: Counts) -> dict[str, Any]:
    if row.status == "cancelled":
        status = "cancelled"
    else:
        status = "in_progress" if counts.by_status.get("in_progress") else "completed"
    return {
        "id": row.id,
        "object": "vector_store.files_batch",
        "created_at": row.created_at,
        "vector_store_id": row.vector_store_id,
        "status": status,
        "file_counts": counts.to_wire(),
    }
