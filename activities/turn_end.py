"""The end of a model turn, and tool outputs: as few statements as the writes allow.

A text turn's message, its step and the run's end are one statement (CTEs), as are
a function call's step and requires_action, and tool outputs with the run queued
again. Each returns the rows its events carry (see turn_writes for why).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from activities.citations import citations, has_labels
from activities.run_writes import (
    ID,
    MESSAGES,
    NOW,
    REQUIRE_ACTION,
    RUNS,
    STEPS,
    Columns,
    call_id,
    get_run,
    message_id,
    param,
    required_action,
    returning,
    step_id,
    usage_dict,
)
from activities.turn_writes import (
    joined,
    message_params,
    new_message,
    new_step,
    split,
    step_params,
)
from core.llm.types import ToolCall, Usage
from core.raw_statements import CompiledStatement, RawDb
from core.tables import RunRow


def _used(plus_step: bool) -> Any:
    """The run's usage: the sum over its steps. `plus_step`: over all but :p_step_id, plus
    :p_prompt_tokens and :p_completion_tokens, the usage the same statement gives that
    step (a statement does not see its own writes)."""
    where = [STEPS.c.run_id == ID, STEPS.c.usage.is_not(None)]
    if plus_step:
        where.append(STEPS.c.id != bindparam("p_step_id"))

    def tokens(key: str) -> Any:
        total = func.coalesce(func.sum(STEPS.c.usage[key].astext.cast(BigInteger)), 0)
        return total + bindparam(f"p_{key}", type_=BigInteger) if plus_step else total

    prompt, completion = tokens("prompt_tokens"), tokens("completion_tokens")
    return select(func.jsonb_build_object(
        literal_column("'prompt_tokens'"), prompt, literal_column("'completion_tokens'"),
        completion, literal_column("'total_tokens'"), prompt + completion,
    )).where(*where).scalar_subquery()


def _end_run(used: Any, **values: Any) -> Any:
    """completed, or incomplete because a token budget ran out."""
    # (Not `IN`: a list parameter is expanded into the SQL at every execution.)
    ending = or_(RUNS.c.status == "in_progress", RUNS.c.status == "cancelling")
    return (update(RUNS).where(RUNS.c.id == ID, ending)
            .values(usage=used, expires_at=None, required_action=None, **values)
            .returning(*returning(RUNS)))


_COMPLETED = {"status": "completed", "completed_at": NOW}
# (Not :p_incomplete_details: that is the message's, in the same statement.)
_INCOMPLETE = {"status": "incomplete", "incomplete_details": bindparam(
    "p_run_incomplete_details", type_=RUNS.c.incomplete_details.type)}
_INCOMPLETE_RUN = CompiledStatement(_end_run(_used(False), **_INCOMPLETE))
# The final message and step, whether or not they were opened while the text streamed.
_FINAL = ("content", "status", "incomplete_details", "completed_at", "incomplete_at")
_message = new_message(**{name: param(MESSAGES, name) for name in _FINAL})
_MESSAGE = _message.on_conflict_do_update(index_elements=["id"], set_={
    name: _message.excluded[name] for name in _FINAL}).returning(*returning(MESSAGES))
_step = new_step("message_creation", status="completed", completed_at=NOW,
                 usage=param(STEPS, "usage"))
_STEP = _step.on_conflict_do_update(index_elements=["id"], set_={
    name: _step.excluded[name] for name in ("status", "completed_at", "usage")}
).returning(*returning(STEPS))
_MESSAGE_AND_STEP = CompiledStatement(joined((MESSAGES, _MESSAGE.cte("message")),
                                              (STEPS, _STEP.cte("step"))))


def _text_turn(end: dict[str, Any]) -> CompiledStatement:
    return CompiledStatement(joined(
        (MESSAGES, _MESSAGE.cte("message")), (STEPS, _STEP.cte("step")),
        optional=(RUNS, _end_run(_used(True), **end).cte("ended"))))


_TEXT_TURN, _INCOMPLETE_TEXT_TURN = _text_turn(_COMPLETED), _text_turn(_INCOMPLETE)
_SEARCH_STEPS = CompiledStatement(select(STEPS.c.step_details).where(
    STEPS.c.run_id == ID, STEPS.c.type == "tool_calls"))
# A message (and its message_creation step) that streamed text the turn then dropped.
_DISCARD_MESSAGE = CompiledStatement(delete(MESSAGES).where(MESSAGES.c.id == ID))
_DISCARD_STEP = CompiledStatement(delete(STEPS).where(STEPS.c.id == ID))


async def _message_params(db: RawDb, run: RunRow, turn: int, text: str, incomplete: bool,
                          usage: Usage | None) -> dict[str, Any]:
    # A text without citation labels cites nothing: no search results to read.
    found = await _search_results_by_turn(db, run.id) if has_labels(text) else {}
    now = int(time.time())
    return {**message_params(run, turn), "p_now": now, "p_content": [
        {"type": "text", "text": {"value": text, "annotations": citations(text, found)}}],
        "p_status": "incomplete" if incomplete else "completed",
        "p_incomplete_details": {"reason": "max_tokens"} if incomplete else None,
        "p_completed_at": None if incomplete else now,
        "p_incomplete_at": now if incomplete else None,
        "p_usage": usage_dict(usage) if usage else None}


async def end_text_turn(db: RawDb, run: RunRow, turn: int, text: str, usage: Usage,
                        incomplete: bool) -> tuple[Columns, Columns, Columns | None]:
    """The model answered in text: its message and step final, and the run completed
    (incomplete if the answer ran out of tokens). Returns (message, step, run); run
    None if the run was no longer in progress or cancelling."""
    params = await _message_params(db, run, turn, text, incomplete, usage)
    params.update(p_id=run.id, p_prompt_tokens=usage.prompt_tokens,
                  p_completion_tokens=usage.completion_tokens,
                  p_run_incomplete_details={"reason": "max_completion_tokens"})
    row = (await db.execute(_INCOMPLETE_TEXT_TURN if incomplete else _TEXT_TURN, params)).one()
    message, step, ended = split(row, MESSAGES, STEPS, RUNS)
    assert message is not None and step is not None
    return message, step, ended


async def complete_message(db: RawDb, run: RunRow, turn: int,
                           text: str) -> tuple[Columns, Columns]:
    """Text that came with tool calls: its message and step final (the tools step
    carries the turn's usage)."""
    params = await _message_params(db, run, turn, text, False, None)
    row = (await db.execute(_MESSAGE_AND_STEP, params)).one()
    message, step = split(row, MESSAGES, STEPS)
    assert message is not None and step is not None
    return message, step


async def discard_message(db: RawDb, run_id: str, turn: int) -> None:
    await db.execute(_DISCARD_MESSAGE, {"p_id": message_id(run_id, turn)})
    await db.execute(_DISCARD_STEP, {"p_id": step_id(run_id, turn, "message")})


async def _search_results_by_turn(db: RawDb, run_id: str) -> dict[int, list[dict[str, Any]]]:
    by_turn: dict[int, list[dict[str, Any]]] = {}
    for details in (await db.execute(_SEARCH_STEPS, {"p_id": run_id})).scalars():
        for call in details["tool_calls"]:
            if call["type"] == "file_search" and "_turn" in call:
                results = (call.get("file_search") or {}).get("results") or []
                by_turn.setdefault(call["_turn"], []).extend(results)
    return by_turn


async def end_incomplete(db: RawDb, run_id: str, reason: str) -> Columns | None:
    """A token budget is spent before the turn: the run as now stored, or None if it was
    no longer in progress or cancelling."""
    return (await db.execute(_INCOMPLETE_RUN, {
        "p_id": run_id, "p_run_incomplete_details": {"reason": reason}})).first_mapping()


# --- tool calls -----------------------------------------------------------------------
# Inserted unless a call streamed; the step stays in progress until outputs arrive, and
# this turn's usage waits on it.
_new_calls = new_step("tool_calls", usage=param(STEPS, "usage"))
_calls = _new_calls.on_conflict_do_update(index_elements=["id"], set_={
    "step_details": _new_calls.excluded.step_details, "usage": _new_calls.excluded.usage})
_CALLS = CompiledStatement(_calls)
_required = REQUIRE_ACTION.cte("required")
_CALLS_AND_REQUIRE = CompiledStatement(select(*_required.c).add_cte(_calls.cte("calls")))


async def record_tool_calls(db: RawDb, run: RunRow, turn: int, calls: list[ToolCall],
                            usage: Usage, server_side: frozenset[str] = frozenset(),
                            ) -> tuple[list[str], Columns | None]:
    """The model called tools: the calls on their step, and requires_action for the
    client's functions (unless server-side calls named in `server_side` run first).
    Returns the functions' call ids, and the run if it now requires action."""
    step_calls: list[dict[str, Any]] = []
    for i, call in enumerate(calls):
        cid = call_id(run.id, turn, i)
        if call.name in server_side:
            # The model's query is kept privately (`_query`): wire shapes omit "_" keys.
            step_calls.append({"id": cid, "type": call.name, call.name: {},
                               "_query": _query_of(call.arguments), "_turn": turn})
        else:
            step_calls.append({"id": cid, "type": "function", "function": {
                "name": call.name, "arguments": call.arguments, "output": None}})
    params = {**step_params(run, turn, "tools", {"type": "tool_calls", "tool_calls": step_calls}),
              "p_usage": usage_dict(usage)}
    functions = [c for c in step_calls if c["type"] == "function"]
    if not functions or len(functions) != len(step_calls):
        await db.execute(_CALLS, params)
        return [c["id"] for c in functions], None
    params.update(p_id=run.id, p_required_action=required_action(functions))
    required = (await db.execute(_CALLS_AND_REQUIRE, params)).first_mapping()
    return [c["id"] for c in functions], required


def _query_of(arguments: str) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    return str(parsed.get("query", "")) if isinstance(parsed, dict) else arguments


# --- tool outputs -----------------------------------------------------------------------
_GET_STEP = CompiledStatement(select(STEPS).where(STEPS.c.id == bindparam("p_step_id")))
# Only a step still in progress takes outputs, and only then is the run queued again.
_outputs = (update(STEPS).where(STEPS.c.id == bindparam("p_step_id"),
                                STEPS.c.status == "in_progress")
            .values(step_details=param(STEPS, "step_details"), status="completed",
                    completed_at=NOW).returning(*returning(STEPS)).cte("outputs"))
_resumed = (update(RUNS).where(RUNS.c.id == ID, RUNS.c.status == "requires_action",
                               select(literal(1)).select_from(_outputs).exists())
            .values(status="queued", required_action=None).returning(*returning(RUNS))
            .cte("resumed"))
_OUTPUTS = CompiledStatement(joined((STEPS, _outputs), optional=(RUNS, _resumed)))


async def record_tool_outputs(db: RawDb, run_id: str, turn: int,
                              outputs: dict[str, str]) -> tuple[Columns, Columns]:
    """The outputs on the turn's step, and the run queued again: (step, run) as now stored."""
    key = {"p_step_id": step_id(run_id, turn, "tools")}
    step: Columns | None = (await db.execute(_GET_STEP, key)).first_mapping()
    run: Columns | None = None
    if step is not None and step["status"] == "in_progress":
        details = dict(step["step_details"])
        details["tool_calls"] = [
            {**call, "function": {**call["function"], "output": outputs.get(call["id"], "")}}
            if call["type"] == "function" else call
            for call in details["tool_calls"]
        ]
        row = (await db.execute(_OUTPUTS, {**key, "p_id": run_id, "p_step_details": details,
                                           "p_now": int(time.time())})).first()
        if row is not None:  # else another delivery recorded them meanwhile
            step, run = split(row, STEPS, RUNS)
        else:
            step = (await db.execute(_GET_STEP, key)).first_mapping()
    if run is None:  # already recorded (a retried activity), or no longer requires action
        run = await get_run(db, run_id)
    assert step is not None and run is not None
    return step, run
