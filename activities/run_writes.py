"""Postgres writes of a run's progress. Each is conditional and idempotent.

Status updates name the statuses they may leave (`WHERE status IN ...`), so a
retried activity is harmless and an illegal transition cannot happen. Rows an
activity creates get ids derived from (run, turn), inserted ON CONFLICT.

The hot ones (a model turn's: turn_writes, turn_end; tool outputs) are Core
statements built and compiled once, run on raw connections (core/raw_statements.py),
returning (`RETURNING`) the rows their events carry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.schema import Table
from sqlmodel import SQLModel, col

from core import ids
from core.llm.types import Usage
from core.raw_statements import CompiledStatement, RawDb
from core.tables import ACTIVE_RUN_STATUSES, MessageRow, RunRow, RunStepRow

RUNS: Table = SQLModel.metadata.tables["runs"]
STEPS: Table = SQLModel.metadata.tables["run_steps"]
MESSAGES: Table = SQLModel.metadata.tables["messages"]
Columns = Mapping[Any, Any]  # a row, by column name (see core.wire's *_columns_to_wire)

# A message finished early ends "incomplete" with this reason.
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


def param(table: Table, column: str) -> BindParameter[Any]:
    """`:p_<column>`, typed like the column (so JSONB values are sent as JSON)."""
    return bindparam(f"p_{column}", type_=table.c[column].type)


def returning(table: Table) -> list[Any]:
    """The columns a statement returns of `table`: all but `seq` (no wire shape has it)."""
    return [c for c in table.c if c.key != "seq"]


ID: BindParameter[str] = bindparam("p_id")
NOW = bindparam("p_now", type_=BigInteger)
_GET_RUN = CompiledStatement(select(RUNS).where(RUNS.c.id == ID))


def run_row(values: Columns) -> RunRow:
    return RunRow(**{"metadata_" if k == "metadata" else k: v for k, v in values.items()})


async def get_run(db: RawDb, run_id: str) -> Columns | None:
    return (await db.execute(_GET_RUN, {"p_id": run_id})).first_mapping()


async def transition(session: AsyncSession, run_id: str, to_status: str,
                     from_statuses: list[str], **values: Any) -> bool:
    result = await session.execute(
        update(RunRow)
        .where(col(RunRow.id) == run_id, col(RunRow.status).in_(from_statuses))
        .values(status=to_status, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


REQUIRE_ACTION = (update(RUNS).where(RUNS.c.id == ID, RUNS.c.status == "in_progress")
                  .values(status="requires_action",
                          required_action=param(RUNS, "required_action"))
                  .returning(*returning(RUNS)))


def required_action(functions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
        {"id": c["id"], "type": "function", "function": {
            "name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
        for c in functions]}}


def require_action_params(run_id: str, functions: list[dict[str, Any]]) -> dict[str, Any]:
    """Of REQUIRE_ACTION: in_progress -> requires_action, returning the run as now stored
    (no row if it was not in progress)."""
    return {"p_id": run_id, "p_required_action": required_action(functions)}


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
