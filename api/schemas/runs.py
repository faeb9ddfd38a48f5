"""Run and run-step objects and requests."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from api.schemas.common import Metadata, Request, ResponseFormat, ToolResources, Tools, WireObject
from api.schemas.messages import CreateMessage
from api.schemas.threads import CreateThread


class TruncationStrategy(Request):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(default=None, ge=1)


class NamedFunction(Request):
    name: str


class FunctionChoice(Request):
    type: Literal["function"]
    function: NamedFunction


class BuiltinToolChoice(Request):
    type: Literal["file_search", "code_interpreter"]


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[FunctionChoice | BuiltinToolChoice, Field(discriminator="type")]
)


class RunOptions(Request):
    """Fields shared by create-run and create-thread-and-run."""

    assistant_id: str
    model: str | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    instructions: str | None = None
    tools: Tools | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    max_prompt_tokens: int | None = Field(default=None, ge=256)
    max_completion_tokens: int | None = Field(default=None, ge=256)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None


class CreateRun(RunOptions):
    additional_instructions: str | None = None
    additional_messages: list[CreateMessage] | None = Field(default=None, max_length=32)


class CreateThreadAndRun(RunOptions):
    thread: CreateThread | None = None
    tool_resources: ToolResources | None = None


class ModifyRun(Request):
    metadata: Metadata | None = None


class ToolOutputIn(Request):
    tool_call_id: str
    output: str


class SubmitToolOutputsRequest(Request):
    tool_outputs: list[ToolOutputIn]
    stream: bool | None = None


class RunObject(WireObject):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: str
    required_action: dict[str, Any] | None
    last_error: dict[str, Any] | None
    expires_at: int | None
    started_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    incomplete_details: dict[str, Any] | None
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    metadata: dict[str, str]
    usage: dict[str, int] | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: dict[str, Any]
    response_format: Any
    tool_choice: Any
    parallel_tool_calls: bool


class RunStepObject(WireObject):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    assistant_id: str
    thread_id: str
    run_id: str
    type: Literal["message_creation", "tool_calls"]
    status: str
    step_details: dict[str, Any]
    last_error: dict[str, Any] | None
    expired_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    metadata: dict[str, str]
    usage: dict[str, int] | None
