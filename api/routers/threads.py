"""/threads: create (with initial messages), retrieve, modify, delete."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from api import attachments, ingestion
from api.deps import ProjectDep, SessionDep, SettingsDep, TemporalDep
from api.ids import ThreadId
from api.lookups import load_thread
from api.routers.messages import new_message_row
from api.schemas.common import Deleted, tool_resources_to_wire
from api.schemas.threads import CreateThread, ModifyThread, ThreadObject
from core import ids
from core.tables import ThreadRow
from core.wire import thread_to_wire

router = APIRouter(prefix="/threads", tags=["threads"])


def new_thread_values(project: str, body: CreateThread, created_at: int) -> dict[str, Any]:
    """A new thread's columns: for `ThreadRow(**...)`, or api/rows.py's `new_row`."""
    return {
        "id": ids.new_id(ids.THREAD),
        "project_id": project,
        "created_at": created_at,
        "tool_resources": tool_resources_to_wire(body.tool_resources),
        "metadata_": body.metadata or {},
    }


async def insert_thread(session: AsyncSession, project: str, body: CreateThread) -> ThreadRow:
    """Add a thread and its initial messages to the session (the caller commits)."""
    now = int(time.time())
    thread = ThreadRow(**new_thread_values(project, body, now))
    session.add(thread)
    await session.flush()  # the messages' foreign key needs the thread row first
    for message in body.messages:
        session.add(new_message_row(thread.id, message, now))
        # Flushing one at a time keeps seq in request order.
        await session.flush()
    return thread


@router.post("", response_model=ThreadObject)
async def create_thread(session: SessionDep, project: ProjectDep, temporal: TemporalDep,
                        settings: SettingsDep, body: CreateThread | None = None) -> dict[str, Any]:
    body = body or CreateThread()
    thread = await insert_thread(session, project, body)
    ingesting = await attachments.attach_files(session, thread, body.messages)
    await session.commit()
    await ingestion.start(session, temporal, settings, ingesting)
    return thread_to_wire(thread)


@router.get("/{thread_id}", response_model=ThreadObject)
async def retrieve_thread(thread_id: ThreadId, session: SessionDep,
                          project: ProjectDep) -> dict[str, Any]:
    return thread_to_wire(await load_thread(session, project, thread_id))


@router.post("/{thread_id}", response_model=ThreadObject)
async def modify_thread(
    thread_id: ThreadId, body: ModifyThread, session: SessionDep, project: ProjectDep
) -> dict[str, Any]:
    row = await load_thread(session, project, thread_id)
    if "metadata" in body.model_fields_set:
        row.metadata_ = body.metadata or {}
    if "tool_resources" in body.model_fields_set:
        row.tool_resources = tool_resources_to_wire(body.tool_resources)
    session.add(row)
    await session.commit()
    return thread_to_wire(row)


@router.delete("/{thread_id}", response_model=Deleted)
async def delete_thread(thread_id: ThreadId, session: SessionDep,
                        project: ProjectDep) -> dict[str, Any]:
    row = await load_thread(session, project, thread_id)
    await session.delete(row)
    await session.commit()
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}
