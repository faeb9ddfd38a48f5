"""/threads/{thread_id}/runs/{run_id}/steps: list and retrieve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import SessionDep
from api.errors import not_found
from api.ids import RunId, StepId, ThreadId
from api.lookups import load_run
from api.pagination import ListQuery, paginate
from api.schemas.common import ListResponse
from api.schemas.runs import RunStepObject
from core.tables import RunStepRow
from core.wire import step_to_wire

router = APIRouter(prefix="/threads/{thread_id}/runs/{run_id}/steps", tags=["run steps"])

# `include[]` names extra content (file_search results) that belongs to the files issue.
IncludeQuery = Annotated[list[str] | None, Query(alias="include[]")]


@router.get("", response_model=ListResponse[RunStepObject])
async def list_steps(thread_id: ThreadId, run_id: RunId, params: ListQuery,
                     session: SessionDep, include: IncludeQuery = None) -> dict[str, Any]:
    await load_run(session, thread_id, run_id)
    return await paginate(session, RunStepRow, params, step_to_wire, RunStepRow.run_id == run_id)


@router.get("/{step_id}", response_model=RunStepObject)
async def retrieve_step(thread_id: ThreadId, run_id: RunId, step_id: StepId,
                        session: SessionDep, include: IncludeQuery = None) -> dict[str, Any]:
    await load_run(session, thread_id, run_id)
    step = await session.get(RunStepRow, step_id)
    if step is None or step.run_id != run_id:
        raise not_found("run step", step_id)
    return step_to_wire(step)
