"""Loading objects by id with OpenAI's 404 wording, and the thread lock."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import invalid, not_found
from core.tables import ACTIVE_RUN_STATUSES, AssistantRow, MessageRow, RunRow, ThreadRow


async def load_assistant(session: AsyncSession, assistant_id: str) -> AssistantRow:
    row = await session.get(AssistantRow, assistant_id)
    if row is None:
        raise not_found("assistant", assistant_id)
    return row


async def load_thread(session: AsyncSession, thread_id: str, *, lock: bool = False) -> ThreadRow:
    """With lock=True the thread row is locked until commit: message and run creation
    take this lock, so "no active run" checked here stays true until the insert."""
    query = select(ThreadRow).where(ThreadRow.id == thread_id)
    if lock:
        query = query.with_for_update()
    row = (await session.scalars(query)).first()
    if row is None:
        raise not_found("thread", thread_id)
    return row


async def load_message(session: AsyncSession, thread_id: str, message_id: str) -> MessageRow:
    row = await session.get(MessageRow, message_id)
    if row is None or row.thread_id != thread_id:
        raise not_found("message", message_id)
    return row


async def load_run(session: AsyncSession, thread_id: str, run_id: str) -> RunRow:
    row = await session.get(RunRow, run_id)
    if row is None or row.thread_id != thread_id:
        raise not_found("run", run_id)
    return row


async def ensure_thread_idle(session: AsyncSession, thread_id: str) -> None:
    """OpenAI's thread lock: nothing may be added while a run is active."""
    active = await session.scalar(
        select(RunRow.id).where(
            RunRow.thread_id == thread_id, RunRow.status.in_(ACTIVE_RUN_STATUSES)  # type: ignore[attr-defined]
        )
    )
    if active is not None:
        raise invalid(f"Thread {thread_id} already has an active run {active}.")
