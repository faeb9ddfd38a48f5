"""/threads/{thread_id}/runs/{run_id}/steps: list and retrieve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import col

from api.deps import ProjectDep, SessionDep
from api.errors import not_found
from api.ids import RunId, StepId, ThreadId
from api.lookups import load_run
from api.pagination import ListQuery, paginate
from api.schemas.common import ListResponse
from api.schemas.runs import RunStepObject
from core.tables import RunStepRow
from core.wire import step_to_wire

router = APIRouter(prefix="/threads/{thread_id}/runs/{run_id}/steps", tags=["run steps"])

# `include[]=step_details.tool_calls[*].file_search.results[*].content` adds the
# text of file_search results, which steps leave out by default (as OpenAI does).
IncludeQuery = Annotated[list[str] | None, Query(alias="include[]")]


@router.get("", response_model=ListResponse[RunStepObject])
async def list_steps(thread_id: ThreadId, run_id: RunId, params: ListQuery,
                     session: SessionDep, project: ProjectDep,
                     include: IncludeQuery = None) -> dict[str, Any]:
    await load_run(session, project, thread_id, run_id)
    return await paginate(session, RunStepRow, params,
                          lambda row: step_to_wire(row, include),
                          col(RunStepRow.run_id) == run_id)


@router.get("/{step_id}", response_model=RunStepObject)
async def retrieve_step(thread_id: ThreadId, run_id: RunId, step_id: StepId,
                        session: SessionDep, project: ProjectDep,
                        include: IncludeQuery = None) -> dict[str, Any]:
    await load_run(session, project, thread_id, run_id)
    step = await session.get(RunStepRow, step_id)
    if step is None or step.run_id != run_id:
        raise not_found("run step", step_id)
    return step_to_wire(step, include)
