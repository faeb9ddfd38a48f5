"""/threads/{thread_id}/runs and /threads/runs: runs as durable workflows.

Writes go to the run service (api/services/runs.py); the polled reads are one statement
each (api/fast_reads.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from api import fast_reads
from api.deps import EventsDep, ProjectDep, RawDbDep, SessionDep
from api.errors import invalid
from api.ids import RunId, ThreadId
from api.lookups import load_run
from api.pagination import ListQuery
from api.schemas.common import ListResponse
from api.schemas.runs import (
    CreateRun,
    CreateThreadAndRun,
    ModifyRun,
    RunObject,
    SubmitToolOutputsRequest,
)
from api.services.runs import RunService
from api.streaming import relay, sse_response
from api.wire_json import json_response, ordered
from core.wire import run_to_wire

router = APIRouter(tags=["runs"])

_STREAM_ID = re.compile(r"\d+-\d+")


async def _run_service(request: Request) -> RunService:
    state = request.app.state
    return RunService(state.raw_db, state.sessions, state.temporal, state.settings,
                      state.events)


RunsDep = Annotated[RunService, Depends(_run_service)]


def _respond(runs: RunService, run: Any, stream: bool | None, request: Request) -> Response:
    """JSON, or (`"stream": true` in the body, whatever Accept says) the run's events."""
    if stream:
        return sse_response(relay(runs.events, run.id, "0-0", request))
    return json_response(ordered(RunObject, run_to_wire(run)))


@router.post("/threads/{thread_id}/runs", response_model=RunObject)
async def create_run(thread_id: ThreadId, body: CreateRun, runs: RunsDep, request: Request,
                     project: ProjectDep) -> Response:
    run = await runs.create_run(project, thread_id, body)
    return _respond(runs, run, body.stream, request)


@router.post("/threads/runs", response_model=RunObject)
async def create_thread_and_run(body: CreateThreadAndRun, runs: RunsDep, request: Request,
                                project: ProjectDep) -> Response:
    run = await runs.create_thread_and_run(project, body)
    return _respond(runs, run, body.stream, request)


# The two reads below answer with pre-serialized JSON from one SQL statement; clients
# poll them. api/fast_lane.py serves them too, before FastAPI's routing.
@router.get("/threads/{thread_id}/runs", response_model=ListResponse[RunObject])
async def list_runs(thread_id: ThreadId, params: ListQuery, pool: RawDbDep,
                    project: ProjectDep) -> Response:
    return await fast_reads.runs_response(pool, project, thread_id, params)


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=RunObject)
async def retrieve_run(thread_id: ThreadId, run_id: RunId, pool: RawDbDep,
                       project: ProjectDep) -> Response:
    return await fast_reads.run_response(pool, project, thread_id, run_id)


@router.post("/threads/{thread_id}/runs/{run_id}", response_model=RunObject)
async def modify_run(thread_id: ThreadId, run_id: RunId, body: ModifyRun,
                     session: SessionDep, project: ProjectDep) -> dict[str, Any]:
    run = await load_run(session, project, thread_id, run_id)
    if "metadata" in body.model_fields_set:
        run.metadata_ = body.metadata or {}
        session.add(run)
        await session.commit()
    return run_to_wire(run)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", response_model=RunObject)
async def cancel(thread_id: ThreadId, run_id: RunId, runs: RunsDep,
                 project: ProjectDep) -> dict[str, Any]:
    return run_to_wire(await runs.cancel(project, thread_id, run_id))


@router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=RunObject)
async def submit_outputs(thread_id: ThreadId, run_id: RunId, body: SubmitToolOutputsRequest,
                         runs: RunsDep, request: Request, project: ProjectDep) -> Any:
    after = await runs.submit_tool_outputs(project, thread_id, run_id, body)
    if body.stream:
        # The new stream starts after everything already published for this run.
        return sse_response(relay(runs.events, run_id, after, request))
    return run_to_wire(await runs.stored(run_id))


@router.get("/threads/{thread_id}/runs/{run_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def run_events(thread_id: ThreadId, run_id: RunId, session: SessionDep,
                     events: EventsDep, request: Request, project: ProjectDep,
                     starting_after: Annotated[str | None, Query()] = None,
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """Beyond OpenAI: replay a run's events after an SSE id, then follow live.

    A client whose connection dropped (or whose API process restarted)
    reconnects here with `Last-Event-ID` and loses nothing.
    """
    await load_run(session, project, thread_id, run_id)
    await session.rollback()
    after = last_event_id or starting_after or "0-0"
    if not _STREAM_ID.fullmatch(after):
        raise invalid(f"Invalid event id '{after[:40]}': expected an id like '1700000000000-0'.",
                      "starting_after")
    return sse_response(relay(events, run_id, after, request))
