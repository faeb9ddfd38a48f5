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

from api import attachments, ingestion
from api.deps import EventsDep, ProjectDep, SessionDep, SettingsDep, TemporalDep
from api.errors import ApiError, invalid
from api.ids import RunId, ThreadId
from api.lookups import ensure_thread_idle, load_assistant, load_run, load_thread
from api.pagination import ListQuery, paginate
from api.routers.messages import new_message_row
from api.routers.threads import insert_thread
from api.run_engine import cancel_run, start_run, submit_tool_outputs
from api.schemas.common import (
    ListResponse,
    response_format_to_wire,
    tool_resources_to_wire,
    tools_to_wire,
)
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
from core import ids
from core.events import RunEvents
from core.settings import Settings
from core.tables import ACTIVE_RUN_STATUSES, AssistantRow, RunRow
from core.wire import run_to_wire, thread_to_wire
from workflows.types import ToolOutput

router = APIRouter(tags=["runs"])

# Clients poll active runs; a short hint keeps the SDK's `create_and_poll` snappy.
POLL_AFTER_MS = "100"
_STREAM_ID = re.compile(r"\d+-\d+")


def _new_run_row(thread_id: str, assistant: AssistantRow, body: RunOptions,
                 settings: Settings, extra_instructions: str | None) -> RunRow:
    now = int(time.time())
    instructions = body.instructions if body.instructions is not None else assistant.instructions
    if extra_instructions:
        instructions = (f"{instructions}\n{extra_instructions}" if instructions
                        else extra_instructions)
    given = body.model_fields_set
    return RunRow(
        id=ids.new_id(ids.RUN),
        thread_id=thread_id,
        assistant_id=assistant.id,
        created_at=now,
        status="queued",
        model=body.model or assistant.model,
        instructions=instructions,
        tools=tools_to_wire(body.tools) if body.tools is not None else assistant.tools,
        metadata_=body.metadata or {},
        expires_at=now + settings.run_expiry_seconds,
        temperature=body.temperature if "temperature" in given else assistant.temperature,
        top_p=body.top_p if "top_p" in given else assistant.top_p,
        max_prompt_tokens=body.max_prompt_tokens,
        max_completion_tokens=body.max_completion_tokens,
        truncation_strategy=(body.truncation_strategy.model_dump() if body.truncation_strategy
                             else {"type": "auto", "last_messages": None}),
        tool_choice=(body.tool_choice if isinstance(body.tool_choice, str | None)
                     else body.tool_choice.model_dump()) or "auto",
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=(response_format_to_wire(body.response_format)
                         or assistant.response_format or "auto"),
    )


async def _commit_run(session: AsyncSession, run: RunRow) -> None:
    session.add(run)
    try:
        await session.commit()
    except IntegrityError:
        # Lost a race for the thread lock (the partial unique index said no).
        await session.rollback()
        await ensure_thread_idle(session, run.thread_id)
        raise


async def _launch(session: AsyncSession, temporal: TemporalDep, settings: Settings,
                  events: RunEvents, run: RunRow, first: list[tuple[str, Any]]) -> None:
    """Announce the run on its event stream (before any worker can), then start it."""
    wire = run_to_wire(run)
    await events.publish(run.id, *first, ("thread.run.created", wire), ("thread.run.queued", wire))
    try:
        await start_run(temporal, settings, run)
    except Exception as error:
        # The row exists but no workflow will ever move it: end it visibly.
        run.status, run.failed_at, run.expires_at = "failed", int(time.time()), None
        run.last_error = {"code": "server_error", "message": "The run could not be started."}
        session.add(run)
        await session.commit()
        raise ApiError(503, "The run engine is unavailable; retry shortly.", type="server_error",
                       code="service_unavailable") from error


def _respond(events: RunEvents, run: RunRow, stream: bool | None, request: Request) -> Any:
    """JSON, or (`"stream": true` in the body, whatever Accept says) the run's events."""
    if stream:
        return sse_response(relay(events, run.id, "0-0", request))
    return run_to_wire(run)


@router.post("/threads/{thread_id}/runs", response_model=RunObject)
async def create_run(thread_id: ThreadId, body: CreateRun, session: SessionDep,
                     temporal: TemporalDep, settings: SettingsDep, events: EventsDep,
                     request: Request, project: ProjectDep) -> Any:
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
    await _launch(session, temporal, settings, events, run, [])
    return _respond(events, run, body.stream, request)


@router.post("/threads/runs", response_model=RunObject)
async def create_thread_and_run(body: CreateThreadAndRun, session: SessionDep,
                                temporal: TemporalDep, settings: SettingsDep, events: EventsDep,
                                request: Request, project: ProjectDep) -> Any:
    assistant = await load_assistant(session, project, body.assistant_id)
    thread_body = body.thread or CreateThread()
    thread = await insert_thread(session, project, thread_body)
    ingesting = await attachments.attach_files(session, thread, thread_body.messages)
    run = _new_run_row(thread.id, assistant, body, settings, None)
    run.tool_resources = tool_resources_to_wire(body.tool_resources)
    await _commit_run(session, run)
    await ingestion.start(session, temporal, settings, ingesting)
    await _launch(session, temporal, settings, events, run,
                  [("thread.created", thread_to_wire(thread))])
    return _respond(events, run, body.stream, request)


@router.get("/threads/{thread_id}/runs", response_model=ListResponse[RunObject])
async def list_runs(thread_id: ThreadId, params: ListQuery, session: SessionDep,
                    project: ProjectDep) -> dict[str, Any]:
    await load_thread(session, project, thread_id)
    return await paginate(session, RunRow, params, run_to_wire,
                          col(RunRow.thread_id) == thread_id)


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=RunObject)
async def retrieve_run(thread_id: ThreadId, run_id: RunId, session: SessionDep,
                       response: Response, project: ProjectDep) -> dict[str, Any]:
    run = await load_run(session, project, thread_id, run_id)
    if run.status in ACTIVE_RUN_STATUSES:
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return run_to_wire(run)


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
