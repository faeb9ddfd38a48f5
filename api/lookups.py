"""Loading objects by id with OpenAI's 404 wording, and the thread lock.

Every loader takes the caller's project: another project's object is "not
found", exactly like a missing one (never a 403, which would confirm it exists).
Children (messages, runs) are scoped through their thread.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.errors import invalid, not_found
from core.tables import ACTIVE_RUN_STATUSES, AssistantRow, FileRow, MessageRow, RunRow, ThreadRow


async def load_assistant(session: AsyncSession, project: str, assistant_id: str) -> AssistantRow:
    row = await session.get(AssistantRow, assistant_id)
    if row is None or row.project_id != project:
        raise not_found("assistant", assistant_id)
    return row


async def load_thread(session: AsyncSession, project: str, thread_id: str, *,
                      lock: bool = False) -> ThreadRow:
    """With lock=True the thread row is locked until commit: message and run creation
    take this lock, so "no active run" checked here stays true until the insert."""
    query = select(ThreadRow).where(col(ThreadRow.id) == thread_id,
                                    col(ThreadRow.project_id) == project)
    if lock:
        query = query.with_for_update()
    row = (await session.scalars(query)).first()
    if row is None:
        raise not_found("thread", thread_id)
    return row


async def load_message(session: AsyncSession, project: str, thread_id: str,
                       message_id: str) -> MessageRow:
    row = (await session.scalars(
        select(MessageRow).join(ThreadRow, col(ThreadRow.id) == col(MessageRow.thread_id))
        .where(col(MessageRow.id) == message_id, col(MessageRow.thread_id) == thread_id,
               col(ThreadRow.project_id) == project))).first()
    if row is None:
        raise not_found("message", message_id)
    return row


async def load_run(session: AsyncSession, project: str, thread_id: str, run_id: str) -> RunRow:
    row = (await session.scalars(
        select(RunRow).join(ThreadRow, col(ThreadRow.id) == col(RunRow.thread_id))
        .where(col(RunRow.id) == run_id, col(RunRow.thread_id) == thread_id,
               col(ThreadRow.project_id) == project))).first()
    if row is None:
        raise not_found("run", run_id)
    return row


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


async def ensure_thread_idle(session: AsyncSession, thread_id: str) -> None:
    """OpenAI's thread lock: nothing may be added while a run is active."""
    active = await session.scalar(
        select(col(RunRow.id)).where(
            col(RunRow.thread_id) == thread_id, col(RunRow.status).in_(ACTIVE_RUN_STATUSES))
    )
    if active is not None:
        raise invalid(f"Thread {thread_id} already has an active run {active}.")
