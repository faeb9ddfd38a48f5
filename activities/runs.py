"""The activities of a run: state transitions and the model turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import run_writes
from activities.context import build_request
from core.llm.errors import ProviderError
from core.llm.openai_compatible import OnDelta
from core.llm.types import ChatRequest, Delta, TurnOutcome
from core.tables import RunRow, RunStepRow
from workflows.types import (
    FinishInput,
    ModelTurnInput,
    ModelTurnResult,
    RecordToolOutputsInput,
    TransitionInput,
)

# The workflow maps these ApplicationError types to `last_error.code`.
ERROR_TYPES = {"invalid_prompt": "InvalidPrompt", "rate_limit_exceeded": "RateLimited",
               "server_error": "ServerError"}
HEARTBEAT_SECONDS = 2.0


class Provider(Protocol):
    """What the activities need of an LLM provider (see core/llm)."""

    async def complete(self, request: ChatRequest, on_delta: OnDelta) -> TurnOutcome: ...


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while waiting on the model: how a cancel reaches a slow call."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class RunActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], provider: Provider) -> None:
        self._sessions = sessions
        self._provider = provider

    @activity.defn(name="transition_run")
    async def transition(self, input: TransitionInput) -> None:
        async with self._sessions() as session, session.begin():
            await run_writes.transition(session, input.run_id, input.to_status,
                                        input.from_statuses)

    @activity.defn(name="finish_run")
    async def finish_run(self, input: FinishInput) -> None:
        async with self._sessions() as session, session.begin():
            await run_writes.finish(session, input.run_id, input.status, input.last_error)

    @activity.defn(name="record_tool_outputs")
    async def record_tool_outputs(self, input: RecordToolOutputsInput) -> None:
        outputs = {o.tool_call_id: o.output for o in input.tool_outputs}
        async with self._sessions() as session, session.begin():
            await run_writes.record_tool_outputs(session, input.run_id, input.turn, outputs)

    @activity.defn(name="model_turn")
    async def model_turn(self, input: ModelTurnInput) -> ModelTurnResult:
        async with self._sessions() as session:
            run = await session.get(RunRow, input.run_id)
            if run is None:
                raise ApplicationError(f"run {input.run_id} not found", non_retryable=True)
            done = await self._already_done(session, run, input.turn)
            if done is not None:
                return done
            request = await build_request(session, run)
        async with _heartbeating():
            try:
                outcome = await self._provider.complete(request, self._on_delta)
            except ProviderError as error:
                raise ApplicationError(
                    error.message, type=ERROR_TYPES[error.code],
                    non_retryable=not error.retryable,
                    next_retry_delay=None if error.retry_after is None
                    else timedelta(seconds=error.retry_after),
                ) from None
        async with self._sessions() as session, session.begin():
            if outcome.tool_calls:
                call_ids = await run_writes.record_tool_calls(
                    session, run, input.turn, outcome.tool_calls, outcome.usage)
                return ModelTurnResult("tool_calls", call_ids)
            incomplete = outcome.finish_reason == "length"
            await run_writes.record_answer(session, run, input.turn, outcome.text,
                                           outcome.usage, incomplete)
            return ModelTurnResult("incomplete" if incomplete else "message")

    async def _on_delta(self, delta: Delta) -> None:
        activity.heartbeat()

    @staticmethod
    async def _already_done(session: AsyncSession, run: RunRow,
                            turn: int) -> ModelTurnResult | None:
        """A retry after the turn's writes committed returns what was recorded."""
        step = await session.get(RunStepRow, run_writes.step_id(run.id, turn))
        if step is None:
            return None
        if step.type == "tool_calls":
            return ModelTurnResult("tool_calls",
                                   [c["id"] for c in step.step_details["tool_calls"]])
        return ModelTurnResult("incomplete" if run.status == "incomplete" else "message")

