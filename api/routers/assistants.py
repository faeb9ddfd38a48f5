"""/assistants: create, list, retrieve, modify, delete."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from sqlmodel import col

from api.deps import ProjectDep, SessionDep, SettingsDep, TemporalDep
from api.errors import invalid
from api.ids import AssistantId
from api.lookups import load_assistant
from api.pagination import ListQuery, paginate
from api.schemas.assistants import (
    AssistantObject,
    CreateAssistant,
    ModifyAssistant,
    assistant_to_wire,
)
from api.schemas.common import (
    Deleted,
    ListResponse,
    merge_tool_resources,
    response_format_to_wire,
    tools_to_wire,
)
from api.services import ingestion, references, store_creation
from core import ids
from core.tables import AssistantRow

router = APIRouter(prefix="/assistants", tags=["assistants"])


@router.post("", response_model=AssistantObject)
async def create_assistant(body: CreateAssistant, session: SessionDep, project: ProjectDep,
                           temporal: TemporalDep, settings: SettingsDep) -> dict[str, Any]:
    await references.ensure(session, project, body)
    tool_resources, ingesting = await store_creation.apply_helper(
        session, project, body.tool_resources, for_thread=False)
    row = AssistantRow(
        id=ids.new_id(ids.ASSISTANT),
        project_id=project,
        created_at=int(time.time()),
        name=body.name,
        description=body.description,
        model=body.model,
        instructions=body.instructions,
        tools=tools_to_wire(body.tools),
        tool_resources=tool_resources,
        metadata_=body.metadata or {},
        temperature=body.temperature,
        top_p=body.top_p,
        response_format=response_format_to_wire(body.response_format),
    )
    session.add(row)
    await session.commit()
    await ingestion.start(session, temporal, settings, ingesting)
    return assistant_to_wire(row)


@router.get("", response_model=ListResponse[AssistantObject])
async def list_assistants(params: ListQuery, session: SessionDep,
                          project: ProjectDep) -> dict[str, Any]:
    return await paginate(session, AssistantRow, params, assistant_to_wire,
                          col(AssistantRow.project_id) == project)


@router.get("/{assistant_id}", response_model=AssistantObject)
async def retrieve_assistant(assistant_id: AssistantId, session: SessionDep,
                             project: ProjectDep) -> dict[str, Any]:
    return assistant_to_wire(await load_assistant(session, project, assistant_id))


@router.post("/{assistant_id}", response_model=AssistantObject)
async def modify_assistant(
    assistant_id: AssistantId, body: ModifyAssistant, session: SessionDep, project: ProjectDep
) -> dict[str, Any]:
    row = await load_assistant(session, project, assistant_id)
    await references.ensure(session, project, body)
    changes = body.model_fields_set
    if "model" in changes and body.model is None:
        # Every assistant has a model: null cannot mean "unset" here.
        raise invalid("Invalid type for 'model': expected a string, but got null instead.",
                      "model", "invalid_type")
    for field in ("model", "name", "description", "instructions", "temperature", "top_p"):
        if field in changes:
            setattr(row, field, getattr(body, field))
    if "tools" in changes:
        row.tools = tools_to_wire(body.tools)
    if "tool_resources" in changes:
        row.tool_resources = merge_tool_resources(row.tool_resources, body.tool_resources)
    if "metadata" in changes:
        row.metadata_ = body.metadata or {}
    if "response_format" in changes:
        row.response_format = response_format_to_wire(body.response_format)
    session.add(row)
    await session.commit()
    return assistant_to_wire(row)


@router.delete("/{assistant_id}", response_model=Deleted)
async def delete_assistant(assistant_id: AssistantId, session: SessionDep,
                           project: ProjectDep) -> dict[str, Any]:
    row = await load_assistant(session, project, assistant_id)
    await session.delete(row)
    await session.commit()
    return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}
