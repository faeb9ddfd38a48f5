"""/threads/{thread_id}/messages: create, list, retrieve, modify, delete."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api import attachments, fast_reads, ingestion
from api.deps import ProjectDep, RawDbDep, SessionDep, SettingsDep, TemporalDep
from api.ids import MessageId, ThreadId
from api.lookups import ensure_thread_idle, load_message, load_thread
from api.pagination import ListQuery
from api.schemas.common import Deleted, ListResponse
from api.schemas.messages import (
    CreateMessage,
    MessageObject,
    ModifyMessage,
    attachments_to_wire,
    content_to_wire,
)
from core import ids
from core.tables import MessageRow
from core.wire import message_to_wire

router = APIRouter(prefix="/threads/{thread_id}/messages", tags=["messages"])


def new_message_values(thread_id: str, body: CreateMessage, created_at: int) -> dict[str, Any]:
    """A new message's columns: for `MessageRow(**...)`, or api/rows.py's `new_row`."""
    return {
        "id": ids.new_id(ids.MESSAGE),
        "thread_id": thread_id,
        "created_at": created_at,
        "role": body.role,
        "content": content_to_wire(body.content),
        "status": "completed",
        "completed_at": created_at,
        "attachments": attachments_to_wire(body.attachments),
        "metadata_": body.metadata or {},
    }


def new_message_row(thread_id: str, body: CreateMessage, created_at: int) -> MessageRow:
    return MessageRow(**new_message_values(thread_id, body, created_at))


@router.post("", response_model=MessageObject)
async def create_message(
    thread_id: ThreadId, body: CreateMessage, session: SessionDep, project: ProjectDep,
    temporal: TemporalDep, settings: SettingsDep,
) -> dict[str, Any]:
    thread = await load_thread(session, project, thread_id, lock=True)
    await ensure_thread_idle(session, thread_id)
    row = new_message_row(thread_id, body, int(time.time()))
    session.add(row)
    ingesting = await attachments.attach_files(session, thread, [body])
    await session.commit()
    await ingestion.start(session, temporal, settings, ingesting)
    return message_to_wire(row)


# The two reads below answer with pre-serialized JSON from one SQL statement.
# api/fast_lane.py serves them too, before FastAPI's routing.
@router.get("", response_model=ListResponse[MessageObject])
async def list_messages(
    thread_id: ThreadId,
    params: ListQuery,
    pool: RawDbDep,
    project: ProjectDep,
    run_id: Annotated[str | None, Query()] = None,
) -> Response:
    return await fast_reads.messages_response(pool, project, thread_id, params, run_id)


@router.get("/{message_id}", response_model=MessageObject)
async def retrieve_message(
    thread_id: ThreadId, message_id: MessageId, pool: RawDbDep, project: ProjectDep
) -> Response:
    return await fast_reads.message_response(pool, project, thread_id, message_id)


@router.post("/{message_id}", response_model=MessageObject)
async def modify_message(
    thread_id: ThreadId, message_id: MessageId, body: ModifyMessage, session: SessionDep,
    project: ProjectDep,
) -> dict[str, Any]:
    row = await load_message(session, project, thread_id, message_id)
    if "metadata" in body.model_fields_set:
        row.metadata_ = body.metadata or {}
        session.add(row)
        await session.commit()
    return message_to_wire(row)


@router.delete("/{message_id}", response_model=Deleted)
async def delete_message(
    thread_id: ThreadId, message_id: MessageId, session: SessionDep, project: ProjectDep
) -> dict[str, Any]:
    row = await load_message(session, project, thread_id, message_id)
    await session.delete(row)
    await session.commit()
    return {"id": message_id, "object": "thread.message.deleted", "deleted": True}
