"""/threads: create (with initial messages), retrieve, modify, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ProjectDep, SessionDep, SettingsDep, TemporalDep
from api.ids import ThreadId
from api.lookups import load_thread
from api.schemas.common import Deleted, merge_tool_resources
from api.schemas.threads import CreateThread, ModifyThread, ThreadObject
from api.services import references, threads
from core.wire import thread_to_wire

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("", response_model=ThreadObject)
async def create_thread(session: SessionDep, project: ProjectDep, temporal: TemporalDep,
                        settings: SettingsDep, body: CreateThread | None = None) -> dict[str, Any]:
    return thread_to_wire(await threads.create_thread(session, temporal, settings, project,
                                                      body or CreateThread()))


@router.get("/{thread_id}", response_model=ThreadObject)
async def retrieve_thread(thread_id: ThreadId, session: SessionDep,
                          project: ProjectDep) -> dict[str, Any]:
    return thread_to_wire(await load_thread(session, project, thread_id))


@router.post("/{thread_id}", response_model=ThreadObject)
async def modify_thread(
    thread_id: ThreadId, body: ModifyThread, session: SessionDep, project: ProjectDep
) -> dict[str, Any]:
    row = await load_thread(session, project, thread_id)
    await references.ensure(session, project, body)
    if "metadata" in body.model_fields_set:
        row.metadata_ = body.metadata or {}
    if "tool_resources" in body.model_fields_set:
        row.tool_resources = merge_tool_resources(row.tool_resources, body.tool_resources)
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
