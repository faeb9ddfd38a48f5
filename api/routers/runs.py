"""/threads/{thread_id}/runs and /threads/runs: runs as durable workflows."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api import attachments, fast_reads, ingestion, run_create
from api.deps import EventsDep, ProjectDep, RawDbDep, SessionDep, SettingsDep, TemporalDep
from api.errors import invalid
from api.ids import RunId, ThreadId
from api.lookups import ensure_thread_idle, load_assistant, load_run, load_thread
from api.pagination import ListQuery
from api.routers.messages import new_message_row
from api.routers.threads import insert_thread
from api.run_create import new_run_values
from api.run_engine import cancel_run, submit_tool_outputs
from api.schemas.common import ListResponse, tool_resources_to_wire
from api.schemas.runs import (
    CreateRun,
    CreateThreadAndRun,
    ModifyRun,
    RunObject,
    RunOptions,
    SubmitToolOutputsRequest,
)
from api.schemas.threads import CreateThread
from api.streaming import relay, sse_response
from api.wire_json import json_response, ordered
from core.events import RunEvents
from core.settings import Settings
from core.tables import AssistantRow, RunRow, ThreadRow
from core.wire import run_to_wire, thread_to_wire
from workflows.types import ToolOutput

router = APIRouter(tags=["runs"])

_STREAM_ID = re.compile(r"\d+-\d+")


def _new_run_row(thread_id: str, assistant: AssistantRow, body: RunOptions,
                 settings: Settings, extra_instructions: str | None) -> RunRow:
    return RunRow(**new_run_values(thread_id, assistant, body, settings, extra_instructions))


async def _commit_run(session: AsyncSession, run: RunRow) -> None:
    session.add(run)
    try:
        await session.commit()
    except IntegrityError:
        # Lost a race for the thread lock (the partial unique index said no).
        await session.rollback()
        await ensure_thread_idle(session, run.thread_id)
        raise


def _respond(events: RunEvents, run: Any, stream: bool | None, request: Request) -> Response:
    """JSON, or (`"stream": true` in the body, whatever Accept says) the run's events."""
    if stream:
        return sse_response(relay(events, run.id, "0-0", request))
    return json_response(ordered(RunObject, run_to_wire(run)))


async def _run_with_files(session: AsyncSession, temporal: TemporalDep, settings: Settings,
                          project: str, thread_id: str, body: CreateRun) -> RunRow:
    """create_run through the ORM, for messages whose files go to the thread's vector store."""
    thread = await load_thread(session, project, thread_id, lock=True)
    await ensure_thread_idle(session, thread_id)
    assistant = await load_assistant(session, project, body.assistant_id)
    now = int(time.time())
    for message in body.additional_messages or []:
        session.add(new_message_row(thread_id, message, now))
        await session.flush()
    ingesting = await attachments.attach_files(session, thread, body.additional_messages or [])
    run = _new_run_row(thread_id, assistant, body, settings, body.additional_instructions)
    await _commit_run(session, run)
    await ingestion.start(session, temporal, settings, ingesting)
    return run


async def _thread_and_run_with_files(session: AsyncSession, temporal: TemporalDep,
                                     settings: Settings, project: str,
                                     body: CreateThreadAndRun) -> tuple[ThreadRow, RunRow]:
    """create_thread_and_run through the ORM, for messages with file_search attachments."""
    assistant = await load_assistant(session, project, body.assistant_id)
    thread_body = body.thread or CreateThread()
    thread = await insert_thread(session, project, thread_body)
    ingesting = await attachments.attach_files(session, thread, thread_body.messages)
    run = _new_run_row(thread.id, assistant, body, settings, None)
    run.tool_resources = tool_resources_to_wire(body.tool_resources)
    await _commit_run(session, run)
    await ingestion.start(session, temporal, settings, ingesting)
    return thread, run


# Run creation takes two SQL statements (api/run_create.py) unless a message attaches
# files for file_search, which needs the ORM's vector-store handling.
@router.post("/threads/{thread_id}/runs", response_model=RunObject)
async def create_run(thread_id: ThreadId, body: CreateRun, pool: RawDbDep,
                     temporal: TemporalDep, settings: SettingsDep, events: EventsDep,
                     request: Request, project: ProjectDep) -> Response:
    run: Any
    write: run_create.RunWrite | None = None
    if attachments.file_search_file_ids(body.additional_messages or []):
        async with request.app.state.sessions() as session:
            run = await _run_with_files(session, temporal, settings, project, thread_id, body)
    else:
        run, write = await run_create.create_run(pool, project, thread_id, body, settings)
    await run_create.launch(pool, temporal, settings, events, run, [], write)
    return _respond(events, run, body.stream, request)


@router.post("/threads/runs", response_model=RunObject)
async def create_thread_and_run(body: CreateThreadAndRun, pool: RawDbDep,
                                temporal: TemporalDep, settings: SettingsDep, events: EventsDep,
                                request: Request, project: ProjectDep) -> Response:
    thread: Any
    run: Any
    write: run_create.RunWrite | None = None
    if attachments.file_search_file_ids(body.thread.messages if body.thread else []):
        async with request.app.state.sessions() as session:
            thread, run = await _thread_and_run_with_files(session, temporal, settings,
                                                           project, body)
    else:
        thread, run, write = await run_create.create_thread_and_run(pool, project, body,
                                                                    settings)
    await run_create.launch(pool, temporal, settings, events, run,
                            [("thread.created", thread_to_wire(thread))], write)
    return _respond(events, run, body.stream, request)


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
async def cancel(thread_id: ThreadId, run_id: RunId, session: SessionDep,
                 temporal: TemporalDep, project: ProjectDep) -> dict[str, Any]:
    run = await load_run(session, project, thread_id, run_id)
    cancellable = ("queued", "in_progress", "requires_action")
    locked = await session.scalar(
        select(RunRow).where(col(RunRow.id) == run_id).with_for_update().execution_options(
            populate_existing=True)
    )
    assert locked is not None
    if locked.status == "cancelling":
        return run_to_wire(locked)
    if locked.status not in cancellable:
        raise invalid(f"Cannot cancel run with status '{locked.status}'.")
    locked.status = "cancelling"
    session.add(locked)
    await session.commit()
    await cancel_run(temporal, run.id)
    return run_to_wire(locked)


@router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=RunObject)
async def submit_outputs(thread_id: ThreadId, run_id: RunId, body: SubmitToolOutputsRequest,
                         session: SessionDep, temporal: TemporalDep, events: EventsDep,
                         request: Request, project: ProjectDep) -> Any:
    run = await load_run(session, project, thread_id, run_id)
    if run.status != "requires_action":
        raise invalid(f"Runs in status \"{run.status}\" do not accept tool outputs.")
    await session.rollback()  # no transaction held while the workflow works
    # The new stream starts after everything already published for this run.
    after = await events.last_id(run_id)
    await submit_tool_outputs(temporal, run_id, [
        ToolOutput(o.tool_call_id, o.output) for o in body.tool_outputs])
    if body.stream:
        return sse_response(relay(events, run_id, after, request))
    refreshed = await session.get(RunRow, run_id, populate_existing=True)
    assert refreshed is not None
    return run_to_wire(refreshed)


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
