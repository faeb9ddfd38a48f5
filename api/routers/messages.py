"""/threads/{thread_id}/messages: create, list, retrieve, modify, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api import fast_reads
from api.deps import ProjectDep, RawDbDep, SessionDep, SettingsDep, TemporalDep
from api.ids import MessageId, ThreadId
from api.lookups import load_message
from api.pagination import ListQuery
from api.schemas.common import Deleted, ListResponse
from api.schemas.messages import CreateMessage, MessageObject, ModifyMessage
from api.services import messages
from core.wire import message_to_wire

router = APIRouter(prefix="/threads/{thread_id}/messages", tags=["messages"])


@router.post("", response_model=MessageObject)
async def create_message(
    thread_id: ThreadId, body: CreateMessage, session: SessionDep, project: ProjectDep,
    temporal: TemporalDep, settings: SettingsDep,
) -> dict[str, Any]:
    row = await messages.create_message(session, temporal, settings, project, thread_id, body)
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
