"""Loading objects by id with OpenAI's 404 wording, and the thread lock.

Every loader takes the caller's project: another project's object is "not
found", exactly like a missing one (never a 403, which would confirm it exists).
Children (messages, runs) are scoped through their thread. These are the ORM's
lookups; the hot paths' single-statement ones (api/fast_reads.py,
api/services/run_statements.py) scope the same way and raise the same errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import ApiError, invalid, not_found
from core.tables import ACTIVE_RUN_STATUSES, AssistantRow, FileRow, MessageRow, RunRow, ThreadRow

Child = TypeVar("Child", MessageRow, RunRow)


async def load_assistant(session: AsyncSession, project: str, assistant_id: str) -> AssistantRow:
    row = await session.get(AssistantRow, assistant_id)
    if row is None or row.project_id != project:
        raise not_found("assistant", assistant_id)
    return row


async def load_thread(session: AsyncSession, project: str, thread_id: str, *,
                      lock: bool = False) -> ThreadRow:
    query = select(ThreadRow).where(col(ThreadRow.id) == thread_id,
                                    col(ThreadRow.project_id) == project)
    if lock:
        query = query.with_for_update()
    row = (await session.scalars(query)).first()
    if row is None:
        raise not_found("thread", thread_id)
    return row


async def _load_child(session: AsyncSession, table: type[Child], kind: str, project: str,
                      thread_id: str, object_id: str) -> Child:
    row = (await session.scalars(
        select(table).join(ThreadRow, col(ThreadRow.id) == col(table.thread_id))
        .where(col(table.id) == object_id, col(table.thread_id) == thread_id,
               col(ThreadRow.project_id) == project))).first()
    if row is None:
        raise not_found(kind, object_id)
    return row


async def load_message(session: AsyncSession, project: str, thread_id: str,
                       message_id: str) -> MessageRow:
    return await _load_child(session, MessageRow, "message", project, thread_id, message_id)


async def load_run(session: AsyncSession, project: str, thread_id: str, run_id: str) -> RunRow:
    return await _load_child(session, RunRow, "run", project, thread_id, run_id)


async def ensure_files(session: AsyncSession, project: str, file_ids: Iterable[str]) -> None:
    """404 for the first of `file_ids` that is not a file of `project`."""
    wanted = list(dict.fromkeys(file_ids))
    if not wanted:
        return
    known = set((await session.scalars(select(col(FileRow.id)).where(
        col(FileRow.id).in_(wanted), col(FileRow.project_id) == project))).all())
    for file_id in wanted:
        if file_id not in known:
            raise not_found("file", file_id)


# --- the thread lock -------------------------------------------------------------------
# OpenAI's rule: nothing may be added to a thread while a run on it is active. Postgres
# enforces it for runs (core/tables.py's partial unique index); message and run creation
# also lock the thread row and check, so they answer with this error rather than a race.

def thread_busy(thread_id: str, run_id: str) -> ApiError:
    return invalid(f"Thread {thread_id} already has an active run {run_id}.")


async def ensure_thread_idle(session: AsyncSession, thread_id: str) -> None:
    active = await session.scalar(
        select(col(RunRow.id)).where(
            col(RunRow.thread_id) == thread_id, col(RunRow.status).in_(ACTIVE_RUN_STATUSES))
    )
    if active is not None:
        raise thread_busy(thread_id, active)


async def lock_idle_thread(session: AsyncSession, project: str, thread_id: str) -> ThreadRow:
    """The project's thread, locked until commit and without an active run: "no active
    run" stays true until the caller's insert commits."""
    thread = await load_thread(session, project, thread_id, lock=True)
    await ensure_thread_idle(session, thread_id)
    return thread
