"""Postgres writes of a run's progress. Each is conditional and idempotent.

Status updates name the statuses they may leave (`WHERE status IN ...`), so a
retried activity is harmless and an illegal transition cannot happen. Rows an
activity creates get ids derived from (run, turn), inserted ON CONFLICT.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.citations import citations
from core import ids
from core.llm.types import ToolCall, Usage
from core.tables import ACTIVE_RUN_STATUSES, MessageRow, RunRow, RunStepRow

# A finished run's message that was still being written ends "incomplete" with this reason.
MESSAGE_INCOMPLETE_REASONS = {"cancelled": "run_cancelled", "failed": "run_failed",
                              "expired": "run_expired"}


def step_id(run_id: str, turn: int, kind: str) -> str:
    """kind: "message" or "tools" (one turn may write some text and call functions)."""
    return ids.derived_id(ids.STEP, run_id, str(turn), kind)


def message_id(run_id: str, turn: int) -> str:
    return ids.derived_id(ids.MESSAGE, run_id, str(turn))


def call_id(run_id: str, turn: int, index: int) -> str:
    # Our own ids: some servers reuse one id for parallel calls, or send none.
    return ids.derived_id(ids.TOOL_CALL, run_id, str(turn), str(index))


def usage_dict(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


async def transition(session: AsyncSession, run_id: str, to_status: str,
                     from_statuses: list[str], **values: Any) -> bool:
    if to_status == "in_progress":
        values.setdefault("started_at", func.coalesce(RunRow.started_at, int(time.time())))
    result = await session.execute(
        update(RunRow)
        .where(col(RunRow.id) == run_id, col(RunRow.status).in_(from_statuses))
        .values(status=to_status, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def usage_total(session: AsyncSession, run_id: str) -> Usage:
    """What the run has used so far: the sum over its steps."""
    usages = await session.scalars(
        select(col(RunStepRow.usage)).where(col(RunStepRow.run_id) == run_id,
                                            col(RunStepRow.usage).is_not(None)))
    total = Usage()
    for usage in usages:
        assert usage is not None
        total.prompt_tokens += usage["prompt_tokens"]
        total.completion_tokens += usage["completion_tokens"]
    return total


async def run_usage(session: AsyncSession, run_id: str) -> dict[str, int]:
    return usage_dict(await usage_total(session, run_id))


STEP_KINDS = {"message_creation": "message", "tool_calls": "tools"}


async def insert_step(session: AsyncSession, run: RunRow, turn: int, type: str,
                      details: dict[str, Any]) -> bool:
    """An in-progress step; False if an earlier attempt of this turn created it already."""
    inserted = await session.scalar(
        insert(RunStepRow).values(
            id=step_id(run.id, turn, STEP_KINDS[type]), run_id=run.id, thread_id=run.thread_id,
            assistant_id=run.assistant_id, created_at=int(time.time()), type=type,
            status="in_progress", step_details=details, metadata={},
        ).on_conflict_do_nothing(index_elements=["id"]).returning(col(RunStepRow.id))
    )
    return inserted is not None


async def open_message(session: AsyncSession, run: RunRow, turn: int) -> bool:
    """The message_creation step and its empty in-progress message, as text starts."""
    msg_id = message_id(run.id, turn)
    created = await insert_step(session, run, turn, "message_creation",
                                {"type": "message_creation", "message_creation": {
                                    "message_id": msg_id}})
    await session.execute(insert(MessageRow).values(
        id=msg_id, thread_id=run.thread_id, created_at=int(time.time()), role="assistant",
        content=[], status="in_progress", assistant_id=run.assistant_id, run_id=run.id,
        attachments=[], metadata={},
    ).on_conflict_do_nothing(index_elements=["id"]))
    return created


async def complete_step(session: AsyncSession, run_id: str, turn: int, kind: str,
                        usage: Usage | None, **values: Any) -> None:
    await session.execute(
        update(RunStepRow).where(col(RunStepRow.id) == step_id(run_id, turn, kind))
        .values(status="completed", completed_at=int(time.time()),
                usage=usage_dict(usage) if usage else None, **values))


async def record_tool_calls(session: AsyncSession, run: RunRow, turn: int,
                            calls: list[ToolCall], usage: Usage,
                            server_side: frozenset[str] = frozenset()) -> list[str]:
    """The model called tools: the calls on their step, and requires_action for the
    client's functions (unless server-side calls named in `server_side` run first)."""
    ids_ = [call_id(run.id, turn, i) for i in range(len(calls))]
    step_calls: list[dict[str, Any]] = []
    for cid, call in zip(ids_, calls, strict=True):
        if call.name in server_side:
            # The model's query is kept privately (`_query`): wire shapes omit "_" keys.
            query = _query_of(call.arguments)
            step_calls.append({"id": cid, "type": call.name, call.name: {}, "_query": query,
                               "_turn": turn})
        else:
            step_calls.append({"id": cid, "type": "function", "function": {
                "name": call.name, "arguments": call.arguments, "output": None}})
    await insert_step(session, run, turn, "tool_calls", {"type": "tool_calls", "tool_calls": []})
    # The step stays in progress until outputs arrive; this turn's usage waits on it.
    await session.execute(
        update(RunStepRow).where(col(RunStepRow.id) == step_id(run.id, turn, "tools"))
        .values(step_details={"type": "tool_calls", "tool_calls": step_calls},
                usage=usage_dict(usage)))
    functions = [c for c in step_calls if c["type"] == "function"]
    if functions and len(functions) == len(step_calls):
        await require_action(session, run.id, functions)
    return [c["id"] for c in functions]


def _query_of(arguments: str) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    return str(parsed.get("query", "")) if isinstance(parsed, dict) else arguments


async def require_action(session: AsyncSession, run_id: str,
                         functions: list[dict[str, Any]]) -> None:
    required = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
        {"id": c["id"], "type": "function", "function": {
            "name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
        for c in functions]}}
    await transition(session, run_id, "requires_action", ["in_progress"],
                     required_action=required)


async def complete_message(session: AsyncSession, run: RunRow, turn: int, text: str,
                           usage: Usage | None, incomplete: bool) -> None:
    """The model's text is final: its message (one per turn, ever) and step."""
    await open_message(session, run, turn)
    now = int(time.time())
    annotations = citations(text, await _search_results_by_turn(session, run.id))
    content = [{"type": "text", "text": {"value": text, "annotations": annotations}}]
    await session.execute(
        update(MessageRow).where(col(MessageRow.id) == message_id(run.id, turn)).values(
            content=content, status="incomplete" if incomplete else "completed",
            incomplete_details={"reason": "max_tokens"} if incomplete else None,
            completed_at=None if incomplete else now, incomplete_at=now if incomplete else None))
    await complete_step(session, run.id, turn, "message", usage)


async def discard_message(session: AsyncSession, run_id: str, turn: int) -> None:
    await session.execute(delete(MessageRow).where(col(MessageRow.id) == message_id(run_id, turn)))
    await session.execute(delete(RunStepRow).where(
        col(RunStepRow.id) == step_id(run_id, turn, "message")))


async def _search_results_by_turn(session: AsyncSession,
                                   run_id: str) -> dict[int, list[dict[str, Any]]]:
    steps = await session.scalars(select(RunStepRow).where(
        col(RunStepRow.run_id) == run_id, col(RunStepRow.type) == "tool_calls"))
    by_turn: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        for call in step.step_details["tool_calls"]:
            if call["type"] == "file_search" and "_turn" in call:
                results = (call.get("file_search") or {}).get("results") or []
                by_turn.setdefault(call["_turn"], []).extend(results)
    return by_turn


async def complete_run(session: AsyncSession, run_id: str,
                       incomplete_reason: str | None = None) -> None:
    """completed, or incomplete because a token budget ran out (`incomplete_reason`)."""
    ending: dict[str, Any] = {"usage": await run_usage(session, run_id),
                              "expires_at": None, "required_action": None}
    if incomplete_reason:
        ending["incomplete_details"] = {"reason": incomplete_reason}
        await transition(session, run_id, "incomplete", ["in_progress", "cancelling"], **ending)
    else:
        await transition(session, run_id, "completed", ["in_progress", "cancelling"],
                         completed_at=int(time.time()), **ending)


async def record_tool_outputs(session: AsyncSession, run_id: str, turn: int,
                              outputs: dict[str, str]) -> None:
    step = await session.get(RunStepRow, step_id(run_id, turn, "tools"), with_for_update=True)
    if step is None or step.status != "in_progress":
        return  # already recorded (a retried activity)
    details = dict(step.step_details)
    details["tool_calls"] = [
        {**call, "function": {**call["function"], "output": outputs.get(call["id"], "")}}
        if call["type"] == "function" else call
        for call in details["tool_calls"]
    ]
    step.step_details = details
    step.status, step.completed_at = "completed", int(time.time())
    await transition(session, run_id, "queued", ["requires_action"], required_action=None)


async def finish(session: AsyncSession, run_id: str, status: str,
                 last_error: dict[str, Any] | None) -> list[str]:
    """End an active run as failed, cancelled or expired, with its steps and message."""
    now = int(time.time())
    stamp = {"failed": "failed_at", "cancelled": "cancelled_at", "expired": None}[status]
    values: dict[str, Any] = {"last_error": last_error, "required_action": None,
                              "expires_at": None}
    if stamp:
        values[stamp] = now
    allowed = list(ACTIVE_RUN_STATUSES)
    if not await transition(session, run_id, status, allowed, **values):
        return []
    step_stamp = {"failed": "failed_at", "cancelled": "cancelled_at", "expired": "expired_at"}
    await session.execute(
        update(RunStepRow)
        .where(col(RunStepRow.run_id) == run_id, col(RunStepRow.status) == "in_progress")
        .values(status=status, last_error=last_error, **{step_stamp[status]: now})
    )
    cut_short = await session.scalars(
        update(MessageRow)
        .where(col(MessageRow.run_id) == run_id, col(MessageRow.status) == "in_progress")
        .values(status="incomplete", incomplete_at=now,
                incomplete_details={"reason": MESSAGE_INCOMPLETE_REASONS[status]})
        .returning(col(MessageRow.id))
    )
    return list(cut_short)


async def keep_partial_text(session: AsyncSession, message_id: str, text: str) -> None:
    """A message cut short keeps the text its readers were already streamed."""
    await session.execute(update(MessageRow).where(col(MessageRow.id) == message_id).values(
        content=[{"type": "text", "text": {"value": text, "annotations": []}}] if text else []))
