"""Assistants API wire shapes of the objects Postgres holds.

Shared by the API (responses) and the activities (stream events), so a
streamed object is byte-for-byte what a later GET returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from core.tables import MessageRow, RunRow, RunStepRow, ThreadRow


def thread_to_wire(row: ThreadRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread",
        "created_at": row.created_at,
        "tool_resources": row.tool_resources or {},
        "metadata": row.metadata_,
    }


def message_to_wire(row: MessageRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread.message",
        "created_at": row.created_at,
        "thread_id": row.thread_id,
        "status": row.status,
        "incomplete_details": row.incomplete_details,
        "completed_at": row.completed_at,
        "incomplete_at": row.incomplete_at,
        "role": row.role,
        "content": row.content,
        "assistant_id": row.assistant_id,
        "run_id": row.run_id,
        "attachments": row.attachments or [],
        "metadata": row.metadata_,
    }


def run_to_wire(row: RunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread.run",
        "created_at": row.created_at,
        "assistant_id": row.assistant_id,
        "thread_id": row.thread_id,
        "status": row.status,
        "started_at": row.started_at,
        "expires_at": row.expires_at,
        "cancelled_at": row.cancelled_at,
        "failed_at": row.failed_at,
        "completed_at": row.completed_at,
        "required_action": row.required_action,
        "last_error": row.last_error,
        "model": row.model,
        "instructions": row.instructions or "",
        "tools": row.tools,
        "metadata": row.metadata_,
        "incomplete_details": row.incomplete_details,
        "usage": row.usage,
        "temperature": 1.0 if row.temperature is None else row.temperature,
        "top_p": 1.0 if row.top_p is None else row.top_p,
        "max_prompt_tokens": row.max_prompt_tokens,
        "max_completion_tokens": row.max_completion_tokens,
        "truncation_strategy": row.truncation_strategy,
        "response_format": row.response_format,
        "tool_choice": row.tool_choice,
        "parallel_tool_calls": row.parallel_tool_calls,
    }


# `include[]` value that asks for the text of file_search results.
INCLUDE_RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def _public_details(details: dict[str, Any], with_content: bool) -> dict[str, Any]:
    """Step details without our private keys ("_query", ...), and without file_search
    result text unless `include[]` asked for it (as OpenAI does)."""
    if details.get("type") != "tool_calls":
        return details
    calls = []
    for call in details["tool_calls"]:
        public = {k: v for k, v in call.items() if not k.startswith("_")}
        search = public.get("file_search")
        if search and search.get("results") and not with_content:
            public["file_search"] = {**search, "results": [
                {k: v for k, v in r.items() if k != "content"} for r in search["results"]]}
        calls.append(public)
    return {**details, "tool_calls": calls}


def step_to_wire(row: RunStepRow, include: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread.run.step",
        "created_at": row.created_at,
        "run_id": row.run_id,
        "assistant_id": row.assistant_id,
        "thread_id": row.thread_id,
        "type": row.type,
        "status": row.status,
        "cancelled_at": row.cancelled_at,
        "completed_at": row.completed_at,
        "expired_at": row.expired_at,
        "failed_at": row.failed_at,
        "last_error": row.last_error,
        "step_details": _public_details(row.step_details,
                                        INCLUDE_RESULT_CONTENT in (include or [])),
        "usage": row.usage,
        "metadata": row.metadata_,
    }


# --- the same shapes from Core rows (e.g. `UPDATE ... RETURNING`), keyed by column name ---
class _ByColumn:
    """A row's values read as the model's attributes, so each wire shape above stays the
    one definition; only `metadata_` (the column `metadata`) is named differently."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[Any, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values["metadata" if name == "metadata_" else name]


def message_columns_to_wire(values: Mapping[Any, Any]) -> dict[str, Any]:
    return message_to_wire(cast(MessageRow, _ByColumn(values)))


def run_columns_to_wire(values: Mapping[Any, Any]) -> dict[str, Any]:
    return run_to_wire(cast(RunRow, _ByColumn(values)))


def step_columns_to_wire(values: Mapping[Any, Any],
                         include: list[str] | None = None) -> dict[str, Any]:
    return step_to_wire(cast(RunStepRow, _ByColumn(values)), include)
