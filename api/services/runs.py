"""The run service: create a run (on a thread, or with a new thread), cancel it, feed it
tool outputs. api/routers/runs.py calls it; it never calls a router.

Creating a run: one read checks the request and builds the run
(api/services/run_statements.py), then `_launch` sends the workflow's start and, while
Temporal takes it, announces the run on its event stream and writes it in one statement.
Requests that refer to files or stores (attachments, image_file parts, tool_resources)
take the ORM instead, for its reference checks and vector-store handling, and launch a
run already written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio.client import Client

from api.errors import ApiError, invalid
from api.lookups import ensure_thread_idle, load_assistant, load_run, lock_idle_thread
from api.schemas.common import tool_resources_to_wire
from api.schemas.runs import CreateRun, CreateThreadAndRun, SubmitToolOutputsRequest
from api.schemas.threads import CreateThread
from api.services import ingestion, references, run_statements, store_creation
from api.services.messages import add_messages
from api.services.run_statements import NewRun, new_run_values
from api.services.run_workflows import abandon_run, cancel_run, start_run, submit_tool_outputs
from api.services.threads import insert_thread
from core.events import RunEvents
from core.rawdb import RawPool
from core.settings import Settings
from core.tables import RunRow, ThreadRow
from core.wire import run_to_wire, thread_to_wire
from workflows.types import ToolOutput

_CANCELLABLE = ("queued", "in_progress", "requires_action")


def _refers(body: CreateRun | CreateThreadAndRun) -> bool:
    """Whether the request names files or stores (to check: api/services/references.py) or asks for
    a new store (the `vector_stores` helper); the single-statement path does neither."""
    thread = body.thread if isinstance(body, CreateThreadAndRun) else None
    return bool(references.collect(body)) or store_creation.helper_requested(
        thread.tool_resources if thread else None)


@dataclass(frozen=True, slots=True)
class RunService:
    """The clients a run needs (the app's, from its lifespan: api/app.py)."""

    pool: RawPool
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    settings: Settings
    events: RunEvents

    # --- create ------------------------------------------------------------------------

    async def create_run(self, project: str, thread_id: str, body: CreateRun) -> Any:
        """POST /threads/{thread_id}/runs: the run, written, its workflow started."""
        if _refers(body):
            async with self.sessions() as session:
                run = await self._run_with_files(session, project, thread_id, body)
            await self._launch(run, [])
            return run
        new = await run_statements.prepare_run(self.pool, project, thread_id, body,
                                               self.settings)
        await self._launch(new.run, [], new)
        return new.run

    async def create_thread_and_run(self, project: str, body: CreateThreadAndRun) -> Any:
        """POST /threads/runs: the run, written with its thread, its workflow started."""
        thread: Any
        run: Any
        new: NewRun | None = None
        if _refers(body):
            async with self.sessions() as session:
                thread, run = await self._thread_and_run_with_files(session, project, body)
        else:
            new = await run_statements.prepare_thread_and_run(self.pool, project, body,
                                                              self.settings)
            thread, run = new.thread, new.run
        await self._launch(run, [("thread.created", thread_to_wire(thread))], new)
        return run

    async def _run_with_files(self, session: AsyncSession, project: str, thread_id: str,
                              body: CreateRun) -> RunRow:
        thread = await lock_idle_thread(session, project, thread_id)
        assistant = await load_assistant(session, project, body.assistant_id)
        await references.ensure(session, project, body)
        _, ingesting = await add_messages(session, thread, body.additional_messages or [],
                                          int(time.time()))
        run = RunRow(**new_run_values(thread_id, assistant, body, self.settings,
                                      body.additional_instructions))
        await _commit_run(session, run)
        await ingestion.start(session, self.temporal, self.settings, ingesting)
        return run

    async def _thread_and_run_with_files(self, session: AsyncSession, project: str,
                                         body: CreateThreadAndRun) -> tuple[ThreadRow, RunRow]:
        assistant = await load_assistant(session, project, body.assistant_id)
        await references.ensure(session, project, body)
        thread, ingesting = await insert_thread(session, project, body.thread or CreateThread())
        run = RunRow(**new_run_values(thread.id, assistant, body, self.settings, None))
        run.tool_resources = tool_resources_to_wire(body.tool_resources)
        await _commit_run(session, run)
        await ingestion.start(session, self.temporal, self.settings, ingesting)
        return thread, run

    async def _launch(self, run: Any, first: list[tuple[str, Any]],
                      new: NewRun | None = None) -> None:
        """Announce the run on its event stream (after the `first` events), write it (`new`;
        None: written already) and start its workflow.

        With `new`, the workflow's start goes out first and the announcement and the write
        happen while Temporal takes it (its RPC is ~10 ms; they are ~2-3 ms off the first
        token). Still, a worker never announces the run before we do: the events go out
        before the write, and the worker waits for the row (activities/runs.py). Nobody
        else can read either before this request answers, the run's id being new. A write
        that fails ends the workflow it started, and removes the events.
        """
        wire = run_to_wire(run)
        announce = self.events.publish(run.id, *first, ("thread.run.created", wire),
                                       ("thread.run.queued", wire))
        started: BaseException | None
        if new is None:
            # The row is there: a worker could announce the run as soon as it starts.
            await announce
            started = await self._start(run)
        else:
            async def announce_and_write() -> None:
                await announce
                await run_statements.write(self.pool, new)

            started, written = await asyncio.gather(
                self._start(run), announce_and_write(), return_exceptions=True)
            if isinstance(written, BaseException):
                if started is None:
                    await abandon_run(self.temporal, run.id)
                with contextlib.suppress(RedisError):  # unread; it would expire in a day
                    await self.events.discard(run.id)
                raise written
        if started is not None:
            await self._fail_unstarted(run)
            raise ApiError(503, "The run engine is unavailable; retry shortly.",
                           type="server_error", code="service_unavailable") from started

    async def _start(self, run: Any) -> Exception | None:
        """Start the run's workflow: None, or why it could not be started."""
        try:
            await start_run(self.temporal, self.settings, run)
        except Exception as error:
            return error
        return None

    async def _fail_unstarted(self, run: Any) -> None:
        """The row exists but no workflow will ever move it: end it visibly."""
        run.status, run.failed_at, run.expires_at = "failed", int(time.time()), None
        run.last_error = {"code": "server_error", "message": "The run could not be started."}
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE runs SET status = %s, failed_at = %s, expires_at = %s, last_error = %s "
                "WHERE id = %s",
                (run.status, run.failed_at, run.expires_at, Jsonb(run.last_error), run.id))

    # --- cancel, tool outputs --------------------------------------------------------------

    async def cancel(self, project: str, thread_id: str, run_id: str) -> RunRow:
        """`cancelling` (already so: unchanged), and the workflow told; other statuses
        than the cancellable ones are a 400."""
        async with self.sessions() as session:
            await load_run(session, project, thread_id, run_id)
            locked = await session.scalar(
                select(RunRow).where(col(RunRow.id) == run_id).with_for_update()
                .execution_options(populate_existing=True))
            assert locked is not None
            if locked.status == "cancelling":
                return locked
            if locked.status not in _CANCELLABLE:
                raise invalid(f"Cannot cancel run with status '{locked.status}'.")
            locked.status = "cancelling"
            session.add(locked)
            await session.commit()
        await cancel_run(self.temporal, run_id)
        return locked

    async def submit_tool_outputs(self, project: str, thread_id: str, run_id: str,
                                  body: SubmitToolOutputsRequest) -> str:
        """Deliver the outputs to a run in `requires_action`; the id on its event stream
        after which the events they cause come."""
        async with self.sessions() as session:
            run = await load_run(session, project, thread_id, run_id)
        if run.status != "requires_action":
            raise invalid(f"Runs in status \"{run.status}\" do not accept tool outputs.")
        after = await self.events.last_id(run_id)
        await submit_tool_outputs(self.temporal, run_id, [
            ToolOutput(o.tool_call_id, o.output) for o in body.tool_outputs])
        return after

    async def stored(self, run_id: str) -> RunRow:
        """The run as stored now, by id alone: for a run a call above found in the
        caller's project."""
        async with self.sessions() as session:
            run = await session.get(RunRow, run_id)
        assert run is not None
        return run


async def _commit_run(session: AsyncSession, run: RunRow) -> None:
    session.add(run)
    try:
        await session.commit()
    except IntegrityError:
        # Lost a race for the thread lock (the partial unique index said no).
        await session.rollback()
        await ensure_thread_idle(session, run.thread_id)
        raise
