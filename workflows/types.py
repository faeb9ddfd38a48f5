"""What crosses the workflow boundary: ids, statuses, small summaries; never thread content.

Tool outputs are the one exception: they arrive through the update (or the
signal an operator sends from the Temporal UI) and go straight to Postgres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class RunResult:
    status: str


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

    status: str
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
    kind: str
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
    status: str
    last_error: dict[str, Any] | None = None
