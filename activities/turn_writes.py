"""A model turn's Postgres work: one statement at its start, per streamed row, and at its end.

Each statement is Core, built and compiled once at import (built per call, a statement
costs more CPU than its SQL), run on a raw connection (core/raw_statements.py), and
returns (`RETURNING`) the rows its stream events carry instead of reading them back.
Writes that go together are one statement (CTEs), so they need no transaction: no BEGIN
and COMMIT round trips (`connect`). Like every run write, each is conditional or ON
CONFLICT: a retried attempt is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select, true, update
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by, insert
from sqlalchemy.sql.schema import Table

from activities.run_writes import (
    ID,
    MESSAGES,
    NOW,
    RUNS,
    STEPS,
    Columns,
    message_id,
    param,
    returning,
    run_row,
    step_id,
)
from core.raw_statements import CompiledStatement, RawDb
from core.tables import RunRow


def _jsonb(sql: str) -> Any:
    return literal_column(sql, type_=JSONB)


def joined(*parts: tuple[Table, Any], optional: tuple[Table, Any] | None = None) -> Any:
    """One row of several CTEs that return `returning(table)` columns each (see `split`):
    none if one of `parts` returned nothing; `optional` may (a conditional status change
    that did not apply: its columns are then NULL). Selected as `cte.*`: the statement
    stays under psycopg's 4 kB limit for caching its parsed form."""
    every = [*parts, optional] if optional else list(parts)
    joined = parts[0][1]
    for _, cte in parts[1:]:
        joined = joined.join(cte, true())
    if optional:
        joined = joined.join(optional[1], true(), isouter=True)
    return select(*(literal_column(f"{cte.name}.*") for _, cte in every)).select_from(joined)


def split(row: Sequence[Any], *tables: Table) -> list[Columns | None]:
    """A `joined` row, one part per table (None for a part that returned nothing)."""
    parts: list[Columns | None] = []
    start = 0
    for table in tables:
        keys = [c.key for c in returning(table)]
        values = dict(zip(keys, row[start:start + len(keys)], strict=True))
        parts.append(None if values["id"] is None else values)
        start += len(keys)
    return parts


# --- the start: the run (moved to in_progress), its thread's messages, its steps ------
def _history(run: Any) -> Any:
    """The thread's messages but the run's own, in order, as [[role, content], ...]."""
    return select(func.coalesce(func.jsonb_agg(aggregate_order_by(
        func.jsonb_build_array(MESSAGES.c.role, MESSAGES.c.content), MESSAGES.c.seq)),
        _jsonb("'[]'::jsonb"))).where(MESSAGES.c.thread_id == run.c.thread_id,
                                      MESSAGES.c.run_id.is_distinct_from(run.c.id)
                                      ).scalar_subquery().label("history")


_STEP_KEYS = ("id", "type", "status", "step_details", "usage")


def _steps(run: Any) -> Any:
    """The run's steps so far, in order: its usage, its earlier tool turns, and (on a
    retry) what this turn recorded already."""
    fields: list[Any] = []
    for key in _STEP_KEYS:
        fields += [literal_column(f"'{key}'"), STEPS.c[key]]
    return select(func.coalesce(func.jsonb_agg(aggregate_order_by(
        func.jsonb_build_object(*fields), STEPS.c.seq)), _jsonb("'[]'::jsonb"))
    ).where(STEPS.c.run_id == run.c.id).scalar_subquery().label("steps")


_started = (update(RUNS).where(RUNS.c.id == ID, RUNS.c.status == "queued")
            .values(status="in_progress", started_at=func.coalesce(RUNS.c.started_at, NOW))
            .returning(*returning(RUNS)).cte("started"))
_START = CompiledStatement(select(_started, _history(_started), _steps(_started)))
_READ = CompiledStatement(select(RUNS, _history(RUNS), _steps(RUNS)).where(RUNS.c.id == ID))


@dataclass
class TurnStart:
    run: RunRow
    started: bool  # this call moved the run from queued to in_progress
    history: list[list[Any]]  # [role, content] of the thread's earlier messages
    steps: list[dict[str, Any]]  # the run's steps so far


async def start_turn(db: RawDb, run_id: str) -> TurnStart | None:
    """The run, moved from queued to in_progress if it was queued; None if not found."""
    while True:
        row = (await db.execute(_START, {"p_id": run_id, "p_now": int(time.time())})
               ).first_mapping()
        started = row is not None
        if row is None:
            row = (await db.execute(_READ, {"p_id": run_id})).first_mapping()
            if row is None:
                return None
            if row["status"] == "queued":
                # Written between the two statements (the API writes a run while its
                # workflow starts): move it now, or the turn would run with the run
                # still queued and leave it so.
                continue
        run = run_row({c.key: row[c.key] for c in returning(RUNS)})
        return TurnStart(run, started, row["history"], row["steps"])


# --- the rows streamed while the model writes ---------------------------------------
def new_step(type: str, **values: Any) -> Any:
    """INSERT of a turn's in-progress step (parameters: `step_params`)."""
    return insert(STEPS).values(
        id=bindparam("p_step_id"), run_id=param(STEPS, "run_id"),
        thread_id=param(STEPS, "thread_id"), assistant_id=param(STEPS, "assistant_id"),
        created_at=NOW, type=type, status="in_progress",
        step_details=param(STEPS, "step_details"), metadata={}).values(**values)


def new_message(**values: Any) -> Any:
    """INSERT of a turn's in-progress message (parameters: `message_params`)."""
    return insert(MESSAGES).values(
        id=bindparam("p_message_id"), thread_id=param(STEPS, "thread_id"), created_at=NOW,
        role="assistant", content=[], status="in_progress",
        assistant_id=param(STEPS, "assistant_id"), run_id=param(STEPS, "run_id"),
        attachments=[], metadata={}).values(**values)


def step_params(run: RunRow, turn: int, kind: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"p_step_id": step_id(run.id, turn, kind), "p_run_id": run.id,
            "p_thread_id": run.thread_id, "p_assistant_id": run.assistant_id,
            "p_now": int(time.time()), "p_step_details": details}


def message_params(run: RunRow, turn: int) -> dict[str, Any]:
    """Of the message and its message_creation step."""
    msg_id = message_id(run.id, turn)
    return {**step_params(run, turn, "message", {
        "type": "message_creation", "message_creation": {"message_id": msg_id}}),
        "p_message_id": msg_id}


_OPEN_TOOLS = CompiledStatement(new_step("tool_calls").on_conflict_do_nothing(
    index_elements=["id"]).returning(*returning(STEPS)))
# The message_creation step and its message: made together, in one statement.
_OPEN_MESSAGE = CompiledStatement(joined(
    (STEPS, new_step("message_creation").on_conflict_do_nothing(index_elements=["id"])
     .returning(*returning(STEPS)).cte("new_step")),
    (MESSAGES, new_message().on_conflict_do_nothing(index_elements=["id"])
     .returning(*returning(MESSAGES)).cte("new_message"))))


async def open_tools(db: RawDb, run: RunRow, turn: int) -> Columns | None:
    """The turn's tool_calls step as its first call streams; None if it was there."""
    params = step_params(run, turn, "tools", {"type": "tool_calls", "tool_calls": []})
    return (await db.execute(_OPEN_TOOLS, params)).first_mapping()


async def open_message(db: RawDb, run: RunRow, turn: int) -> tuple[Columns, Columns] | None:
    """The message_creation step and its empty in-progress message, as text starts:
    (step, message), or None if an earlier attempt of this turn created them."""
    row = (await db.execute(_OPEN_MESSAGE, message_params(run, turn))).first()
    if row is None:
        return None
    step, message = split(row, STEPS, MESSAGES)
    assert step is not None and message is not None
    return step, message
