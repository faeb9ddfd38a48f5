"""What a model's answer must satisfy before the run moves on.

Backends do not always obey `tool_choice`, `response_format` or strict
function schemas (small open models least of all). A violation gets one
repair attempt with the reason spelled out; a second one fails the run with
that reason in `last_error`, instead of storing an answer the client did not
ask for.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from core.llm.quirks import parse_content_calls
from core.llm.types import ChatMessage, ChatRequest, TurnOutcome


def _function_tools(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the model may call, by name: the functions, and file_search when present."""
    functions = {t["function"]["name"]: t["function"] for t in tools
                 if t.get("type") == "function"}
    if any(t.get("type") == "file_search" for t in tools):
        functions.setdefault("file_search", {"name": "file_search"})
    return functions


def _schema_error(value: Any, schema: dict[str, Any]) -> str | None:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return f"{error.message} (at {where})"
    except jsonschema.SchemaError as error:
        return f"the schema itself is invalid: {error.message}"
    return None


def _call_problem(name: str, arguments: str, functions: dict[str, dict[str, Any]]) -> str | None:
    if name not in functions:
        return f"the model called '{name}', which is not one of the run's functions"
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return f"the arguments of '{name}' are not valid JSON"
    if not isinstance(parsed, dict):
        return f"the arguments of '{name}' are not a JSON object"
    spec = functions[name]
    if spec.get("strict") and spec.get("parameters"):
        problem = _schema_error(parsed, spec["parameters"])
        if problem:
            return f"the arguments of '{name}' do not match its strict schema: {problem}"
    return None


def violation(tools: list[dict[str, Any]], tool_choice: Any, response_format: Any,
              outcome: TurnOutcome) -> str | None:
    """Why this answer breaks the run's contract, or None if it does not."""
    forced = None
    if isinstance(tool_choice, dict):
        forced = (tool_choice.get("function") or {}).get("name") or (
            "file_search" if tool_choice.get("type") == "file_search" else None)
    if outcome.tool_calls:
        if tool_choice == "none":
            return "tool_choice is 'none', but the model called a function"
        functions = _function_tools(tools)
        for call in outcome.tool_calls:
            if forced and call.name != forced:
                return f"tool_choice requires '{forced}', but the model called '{call.name}'"
            problem = _call_problem(call.name, call.arguments, functions)
            if problem:
                return problem
        return None
    if tool_choice == "required" or forced:
        return (f"tool_choice requires a call to '{forced}'" if forced else
                "tool_choice is 'required'") + ", but the model answered with text"
    if outcome.finish_reason == "length":
        return None  # truncated output cannot be valid JSON; the run ends incomplete instead
    if not (isinstance(response_format, dict) and response_format.get("type") in (
            "json_object", "json_schema")):
        return _call_as_text(tools, tool_choice, outcome.text)
    try:
        parsed = json.loads(outcome.text)
    except ValueError:
        return "response_format asks for JSON, but the answer is not valid JSON"
    if response_format["type"] == "json_object" and not isinstance(parsed, dict):
        return "response_format is json_object, but the answer is not a JSON object"
    schema = (response_format.get("json_schema") or {}).get("schema")
    if response_format["type"] == "json_schema" and schema:
        problem = _schema_error(parsed, schema)
        if problem:
            return f"the answer does not match the response_format schema: {problem}"
    return None


def _call_as_text(tools: list[dict[str, Any]], tool_choice: Any, text: str) -> str | None:
    """A text answer that is a function call written out is never stored as the answer: a
    model offered nothing to call (tool_choice "none") still writes its usual call, and one
    whose calls the server did not parse leaves them in its text. (A JSON answer the
    caller asked for through response_format is not looked at: it may have any shape.)"""
    if tool_choice == "none" and parse_content_calls(text, None):
        return ("tool_choice is 'none', so no function may be called, but the answer is a "
                "function call written as text; answer in plain text")
    calls = parse_content_calls(text, set(_function_tools(tools)))
    if calls:
        return f"the answer is a call to '{calls[0].name}' written as text, not a function call"
    return None


def repair_request(request: ChatRequest, outcome: TurnOutcome, problem: str) -> ChatRequest:
    """The same request plus the rejected answer and why it was rejected."""
    rejected = outcome.text or json.dumps(
        [{"name": c.name, "arguments": c.arguments} for c in outcome.tool_calls])
    messages = [*request.messages,
                ChatMessage(role="assistant", content=rejected),
                ChatMessage(role="user", content=f"Your previous answer was rejected: {problem}. "
                                                 "Answer again, and follow the instructions.")]
    return ChatRequest(**{**request.__dict__, "messages": messages})
