"""The activities of a run: state transitions and the model turn.

Each writes Postgres first (the record), then publishes the matching stream
events (what live clients see), so an event never names a row that is not there.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import run_writes, turn_end, turn_writes
from activities.context import ImageResolver, prepare_turn
from activities.file_search import FILE_SEARCH, file_search_settings
from activities.heartbeat import heartbeating
from activities.turn_rules import repair_request, violation
from activities.turn_stream import TurnStream
from core.events import RunEvents
from core.llm.errors import ProviderError
from core.llm.openai_compatible import OnDelta
from core.llm.types import ChatRequest, TurnOutcome, Usage
from core.raw_statements import connect
from core.rawdb import RawPool
from core.storage import ObjectStorage
from core.tables import FileRow, MessageRow, RunRow, ThreadRow
from core.tokens import estimate_tokens
from core.wire import (
    message_columns_to_wire,
    message_to_wire,
    run_columns_to_wire,
    run_to_wire,
    step_columns_to_wire,
)
from workflows.types import (
    ERROR_TYPES,
    FinishInput,
    ModelTurnInput,
    ModelTurnResult,
    RecordToolOutputsInput,
)

# How long a first turn waits for its run's row (see `_start_turn`): the API writes it
# while the workflow starts, a few ms; longer only if that API process stalled or died.
ROW_WAIT_SECONDS = 30.0
ROW_POLL_SECONDS = 0.005
# OpenAI's own limit for an image in a message.
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def _server_side(run: RunRow, outcome: TurnOutcome) -> frozenset[str]:
    """Calls this worker answers itself: file_search, when the run has that tool and no
    function of the same name."""
    declared = {t["function"]["name"] for t in run.tools if t.get("type") == "function"}
    if file_search_settings(run.tools) is None or FILE_SEARCH in declared:
        return frozenset()
    return frozenset({FILE_SEARCH} & {c.name for c in outcome.tool_calls})


class Provider(Protocol):
    """What the activities need of an LLM provider (see core/llm)."""

    async def complete(self, request: ChatRequest, on_delta: OnDelta) -> TurnOutcome: ...


class RunActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], db: RawPool,
                 provider: Provider, events: RunEvents, context_window: Callable[[str], int],
                 storage: ObjectStorage | None = None) -> None:
        # The hot statements (a turn's, tool outputs) run on `db`'s raw connections;
        # the rare paths (a run's failure or cancel, images) through the ORM.
        self._sessions = sessions
        self._db = db
        self._provider = provider
        self._events = events
        self._storage = storage
        # The context window of a model (by name), for `truncation_strategy: auto`.
        self._context_window = context_window

    @activity.defn(name="finish_run")
    async def finish_run(self, input: FinishInput) -> None:
        events: list[tuple[str, Any]] = []
        async with self._sessions() as session, session.begin():
            cut_short = await run_writes.finish(session, input.run_id, input.status,
                                                input.last_error)
            for message_id in cut_short:
                text = await self._events.published_text(input.run_id, message_id)
                await run_writes.keep_partial_text(session, message_id, text)
                message = await session.get(MessageRow, message_id, populate_existing=True)
                assert message is not None
                events.append(("thread.message.incomplete", message_to_wire(message)))
        if events:
            await self._events.publish(input.run_id, *events)
        await self._publish_run(input.run_id)

    @activity.defn(name="record_tool_outputs")
    async def record_tool_outputs(self, input: RecordToolOutputsInput) -> None:
        outputs = {o.tool_call_id: o.output for o in input.tool_outputs}
        async with connect(self._db, transaction=False) as db:
            step, run = await turn_end.record_tool_outputs(db, input.run_id, input.turn,
                                                           outputs)
        await self._events.publish(
            input.run_id, ("thread.run.step.completed", step_columns_to_wire(step)),
            (f"thread.run.{run['status']}", run_columns_to_wire(run)))

    @activity.defn(name="model_turn")
    async def model_turn(self, input: ModelTurnInput) -> ModelTurnResult:
        start = await self._start_turn(input)
        run = start.run
        # in_progress goes out while the prompt is built and the model asked (~1 ms off
        # the first token); every later publish of the turn waits for it, so clients
        # still see it first, and the turn does not end before it is out.
        announced: asyncio.Future[None] = asyncio.ensure_future(
            self._events.publish(run.id, ("thread.run.in_progress", run_to_wire(run)))
            if start.started else asyncio.sleep(0))
        try:
            return await self._run_turn(run, start, input.turn, announced)
        finally:
            await announced

    async def _start_turn(self, input: ModelTurnInput) -> turn_writes.TurnStart:
        """The run, moved to in_progress (queued -> in_progress here rather than in an
        activity of its own: one task fewer per turn, the same observable states; and in
        the statement that reads what the prompt needs).

        The API starts a run's workflow while it writes the run (api/services/runs.py
        `RunService._launch`), so a first turn may come before the row: it waits for it, a while.
        The API announced the run before writing it, so once the row is here this turn's
        `in_progress` comes after those events."""
        delay, waited = ROW_POLL_SECONDS, 0.0
        while True:
            async with connect(self._db, transaction=False) as db:
                start = await turn_writes.start_turn(db, input.run_id)
            if start is not None:
                return start
            if input.turn > 1 or waited >= ROW_WAIT_SECONDS:
                raise ApplicationError(f"run {input.run_id} not found", non_retryable=True)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)

    async def _run_turn(self, run: RunRow, start: turn_writes.TurnStart, turn: int,
                        announced: asyncio.Future[None]) -> ModelTurnResult:
        # This turn's writes may have committed already, and not only on a retry: an
        # operator's reset of the workflow runs the turn again from attempt 1 (so would a
        # local activity, which a restarted worker runs again from attempt 1). The steps
        # come with the start statement, so checking always costs one subquery.
        done = self._already_done(start.steps, run, turn)
        if done is not None:
            return done
        prepared = await prepare_turn(run, self._context_window(run.model), start.history,
                                      start.steps, self._image_resolver(run))
        if prepared.exhausted:
            await announced
            return await self._end_incomplete(run.id, prepared.exhausted)
        stream = TurnStream(self._db, self._events, run, turn, announced)
        async with heartbeating():
            outcome = await self._call(prepared.request, stream)
            problem = violation(run.tools, prepared.tool_choice, run.response_format, outcome)
            if problem:
                activity.logger.info("run %s: repairing the answer: %s", run.id, problem)
                stream.restart()
                outcome = await self._call(repair_request(prepared.request, outcome, problem),
                                           stream)
                again = violation(run.tools, prepared.tool_choice, run.response_format, outcome)
                if again:
                    raise ApplicationError(
                        f"The model's answer was rejected: {problem}; the repair attempt was "
                        f"rejected too: {again}.", type="ModelContract", non_retryable=True)
        if not run.parallel_tool_calls:
            outcome.tool_calls = outcome.tool_calls[:1]
        if not outcome.usage.total_tokens:
            # The backend reported no usage: our estimate, so usage is never empty.
            outcome.usage = Usage(prepared.prompt_tokens, estimate_tokens(
                outcome.text + "".join(c.name + c.arguments for c in outcome.tool_calls)))
        await announced
        return await self._record(run, turn, outcome, stream.message_opened)

    async def _call(self, request: ChatRequest, stream: TurnStream) -> TurnOutcome:
        try:
            return await self._provider.complete(request, stream.on_delta)
        except ProviderError as error:
            raise ApplicationError(
                error.message, type=ERROR_TYPES[error.code], non_retryable=not error.retryable,
                next_retry_delay=None if error.retry_after is None
                else timedelta(seconds=error.retry_after),
            ) from None

    async def _end_incomplete(self, run_id: str, reason: str) -> ModelTurnResult:
        async with connect(self._db, transaction=False) as db:
            ended = await turn_end.end_incomplete(db, run_id, reason)
        if ended is None:
            await self._publish_run(run_id)
        else:
            await self._events.publish(run_id, (f"thread.run.{ended['status']}",
                                                run_columns_to_wire(ended)))
        return ModelTurnResult("incomplete")

    async def _record(self, run: RunRow, turn: int, outcome: TurnOutcome,
                      message_opened: bool) -> ModelTurnResult:
        """The turn's outcome, then its closing events."""
        incomplete = outcome.finish_reason == "length" and not outcome.tool_calls
        calls, searching = outcome.tool_calls, _server_side(run, outcome)
        call_ids: list[str] = []
        events: list[tuple[str, Any]] = []
        # One statement, unless text came with tool calls or streamed text is dropped.
        several = bool(calls) and bool(outcome.text or message_opened)
        async with connect(self._db, transaction=several) as db:
            if not calls:
                message, step, final = await turn_end.end_text_turn(
                    db, run, turn, outcome.text, outcome.usage, incomplete)
                events += _message_events(message, step)
            else:
                if outcome.text:  # the turn's usage goes on its tool calls' step
                    message, step = await turn_end.complete_message(db, run, turn,
                                                                    outcome.text)
                    events += _message_events(message, step)
                elif message_opened:
                    # Text streamed by a rejected answer, replaced by tool calls: no message.
                    await turn_end.discard_message(db, run.id, turn)
                call_ids, final = await turn_end.record_tool_calls(
                    db, run, turn, calls, outcome.usage, searching)
            if final is None:  # no status change made (or none applied): the run as it is
                final = await run_writes.get_run(db, run.id)
                assert final is not None
            if final["status"] != "in_progress":  # not while server-side tools still run
                events.append((f"thread.run.{final['status']}", run_columns_to_wire(final)))
        await self._events.publish(run.id, *events)
        if calls:
            return ModelTurnResult("tool_calls", call_ids, file_search=bool(searching))
        return ModelTurnResult("incomplete" if incomplete else "message")

    def _image_resolver(self, run: RunRow) -> ImageResolver | None:
        """image_file parts as data URLs: only the thread's project's image files."""
        storage = self._storage
        if storage is None:
            return None

        async def data_url(file_id: str) -> str | None:
            async with self._sessions() as session:
                file = await session.get(FileRow, file_id)
                thread = await session.get(ThreadRow, run.thread_id)
            if (file is None or thread is None or file.project_id != thread.project_id
                    or not file.content_type.startswith("image/")
                    or file.bytes > MAX_IMAGE_BYTES):
                return None
            data = await storage.get(file.storage_key)
            return f"data:{file.content_type};base64,{base64.b64encode(data).decode()}"

        return data_url
    async def _publish_run(self, run_id: str) -> None:
        async with self._sessions() as session:
            run = await session.get(RunRow, run_id)
        if run is not None:
            await self._events.publish(run_id, (f"thread.run.{run.status}", run_to_wire(run)))

    @staticmethod
    def _already_done(steps: Sequence[Mapping[str, Any]], run: RunRow,
                      turn: int) -> ModelTurnResult | None:
        """A retry after the turn's writes committed returns what was recorded."""
        by_id = {step["id"]: step for step in steps}
        tools = by_id.get(run_writes.step_id(run.id, turn, "tools"))
        if tools is not None and tools["step_details"]["tool_calls"]:
            calls = tools["step_details"]["tool_calls"]
            return ModelTurnResult("tool_calls",
                                   [c["id"] for c in calls if c["type"] == "function"],
                                   file_search=any(c["type"] == FILE_SEARCH for c in calls))
        message = by_id.get(run_writes.step_id(run.id, turn, "message"))
        if message is not None and message["status"] == "completed":
            return ModelTurnResult("incomplete" if run.status == "incomplete" else "message")
        return None


def _message_events(message: Mapping[str, Any],
                    step: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(f"thread.message.{message['status']}", message_columns_to_wire(message)),
            ("thread.run.step.completed", step_columns_to_wire(step))]
