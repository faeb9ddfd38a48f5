"""What crosses the workflow boundary: ids, statuses, small summaries; never thread content.

Tool outputs are the one exception: they arrive through the update (or the
signal an operator sends from the Temporal UI) and go straight to Postgres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from temporalio.exceptions import ApplicationError

# What a run's workflow can report; Postgres holds the full lifecycle (cancelling too).
RunStatus = Literal["queued", "in_progress", "requires_action", "cancelled", "failed",
                    "completed", "incomplete", "expired"]
# How a run ends when it does not complete (FinishInput.status).
EndStatus = Literal["cancelled", "failed", "expired"]
ErrorCode = Literal["server_error", "rate_limit_exceeded", "invalid_prompt",
                    "unsupported_file", "invalid_file"]

# The one map between OpenAI's `last_error.code` and the ApplicationError type an activity
# raises for it: activities raise by code, workflows report by type, through this table.
ERROR_TYPES: dict[ErrorCode, str] = {
    "server_error": "ServerError", "rate_limit_exceeded": "RateLimited",
    "invalid_prompt": "InvalidPrompt", "unsupported_file": "UnsupportedFile",
    "invalid_file": "InvalidFile",
}
_CODES: dict[str, ErrorCode] = {kind: code for code, kind in ERROR_TYPES.items()}


def error_code(error_type: str | None) -> ErrorCode:
    """`last_error.code` for an ApplicationError type; anything unknown is ours."""
    return _CODES.get(error_type or "", "server_error")


def closing_failure(status: str, last_error: dict[str, str] | None) -> ApplicationError:
    """What a failed or expired run's workflow closes with (RunInput.close_as_failed): the
    run's `last_error`, its code as the type (what the Temporal UI shows first), or
    `expired`. Non-retryable: no workflow retry policy may start the run over."""
    if status == "expired":
        return ApplicationError("The run expired: it had not ended by its expires_at.",
                                type="expired", non_retryable=True)
    error = last_error or {}
    return ApplicationError(error.get("message", "The run failed."),
                            type=error.get("code", "server_error"), non_retryable=True)


@dataclass
class RetrySettings:
    """How model calls are retried; read from settings when the run is created."""

    initial_interval_seconds: float = 1.0
    maximum_interval_seconds: float = 30.0
    maximum_attempts: int = 6
    # One call's start-to-close (cut to the time the run has left). The API sets the run's
    # whole lifetime: silence is what the provider's client times out, not length.
    model_call_timeout_seconds: float = 120.0
    heartbeat_timeout_seconds: float = 15.0


@dataclass
class RunInput:
    run_id: str
    thread_id: str
    assistant_id: str
    # Unix seconds: the run expires if it is still active then.
    expires_at: int
    retry: RetrySettings = field(default_factory=RetrySettings)
    # The model turn as a local activity (the API starts every run so). Absent from the
    # input of runs started before it: those keep replaying the regular activity they
    # ran. An input field rather than workflow.patched(), whose marker and
    # TemporalChangeVersion search-attribute upsert would cost every run two history
    # events and a visibility write.
    local_model_turn: bool = False
    # A failed or expired run closes its workflow as Failed (cancelled ones already close
    # Canceled), once finish_run has written the run's row, so the Temporal UI shows it as
    # such. The API starts every run so; absent from the input of runs started before, whose
    # recorded histories end in a completed workflow and must keep doing so on replay.
    close_as_failed: bool = False


@dataclass
class RunResult:
    status: RunStatus


@dataclass
class ToolOutput:
    tool_call_id: str
    output: str


@dataclass
class SubmitToolOutputs:
    tool_outputs: list[ToolOutput]


@dataclass
class RunState:
    """The live state a query returns to operators (Postgres holds the record)."""

    status: RunStatus
    turn: int
    pending_tool_call_ids: list[str]


# --- activity inputs/outputs ---------------------------------------------------
@dataclass
class ModelTurnInput:
    run_id: str
    turn: int
    # The workflow retries the turn itself (a local activity, see workflows/retries.py),
    # so Temporal's attempt count stays 1: this is the real one.
    attempt: int = 1


@dataclass
class ModelTurnResult:
    # "message": the run is complete; "tool_calls": the model called tools;
    # "incomplete": a token limit ended it; "expired": no time was left.
    kind: Literal["message", "tool_calls", "incomplete", "expired"]
    # Function calls the client must answer (the run is in requires_action).
    tool_call_ids: list[str] = field(default_factory=list)
    # Server-side file_search calls to run before anything else.
    file_search: bool = False


@dataclass
class FileSearchInput:
    run_id: str
    turn: int


@dataclass
class RecordToolOutputsInput:
    run_id: str
    turn: int
    tool_outputs: list[ToolOutput]


@dataclass
class FinishInput:
    """End a run that did not complete: failed, cancelled or expired."""

    run_id: str
    status: EndStatus
    last_error: dict[str, Any] | None = None
