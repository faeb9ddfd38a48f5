"""Function calling on OpenAI-compatible servers that do not quite do function calling.

Open models behind vLLM / Ollama / llama.cpp differ in what their chat template and
server support. Depending on the model's `Capabilities`, a request is sent in one of
three modes and the answer converted back to the neutral TurnOutcome:

- native: `tools` as usual; tool calls the model wrote as JSON in `content` are still
  recognised (only for declared functions), because many models do that.
- prompted (native_tools=false): the functions are described in the system prompt and
  the model answers with a JSON block, parsed out of the content.
- constrained (native_tools=false, json_schema=true): as prompted, but the server's
  guided decoding enforces {"tool_calls": [...]} | {"message": "..."}.

Templates without role "tool" get the call history as plain text turns either way.
`tool_choice: "none"` offers nothing in any mode: no `tools`, no functions in the prompt,
past calls told as prose (an answer written as a call anyway is repaired: turn_rules.py).

Small models in prompted / constrained mode tend to call the same function again once
its result is in (the call is the pattern right above). When `tool_choice` leaves the
choice to the model and every call in an answer repeats one already answered with the
same arguments, the answer is not taken: the turn is asked again with tool_choice
"none", so the model answers from the results (`repeats_answered_calls`).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from typing import Any, Literal

from core.llm.models import Capabilities
from core.llm.types import ChatMessage, ChatRequest, FunctionSpec, ToolCall

Mode = Literal["native", "prompted", "constrained"]
_FENCE = re.compile(r"^```[ \t]*(?:json)?[ \t]*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
# How an answer that is a tool call begins; used to decide whether to hold text back.
TOOL_OPENERS = ("{", "```json", "```\n", "<tool_call>")


def adapt_request(request: ChatRequest, caps: Capabilities) -> tuple[ChatRequest, Mode]:
    """The request as this server can take it, and the mode its answer comes back in."""
    messages = request.messages if caps.vision else [_without_images(m) for m in request.messages]
    uses_tools = bool(request.tools) and request.tool_choice != "none"
    mode: Mode = "native"
    if not caps.native_tools:
        mode = "constrained" if caps.json_schema and uses_tools else "prompted"
    if mode != "native" or not caps.tool_role or not uses_tools:
        # With nothing to call, past calls are told as prose: a JSON block in the history
        # is a pattern small models copy instead of answering.
        messages = calls_as_text(messages, fenced=mode != "constrained",
                                 prose=not uses_tools)
    adapted = replace(request, messages=messages)
    if not uses_tools:
        # Nothing offered, in any mode: servers that take `tools` with tool_choice "none"
        # (llama.cpp) still show them to the model, which then writes its usual call.
        return replace(adapted, tools=[], tool_choice=None, parallel_tool_calls=None), "native"
    if mode == "native":
        if isinstance(request.tool_choice, dict) and not caps.tool_choice_object:
            # Servers that only take strings: force a call, and offer only that function.
            name = request.tool_choice.get("function", {}).get("name")
            adapted = replace(adapted, tool_choice="required",
                              tools=[t for t in request.tools if t.name == name])
        return adapted, mode
    tools = _offered(request)
    adapted = replace(adapted, tools=[], tool_choice=None, parallel_tool_calls=None)
    if not tools:
        return adapted, "native"  # a named function the run does not have: nothing to call
    prompt = _tools_prompt(tools, request.tool_choice, constrained=mode == "constrained")
    adapted = replace(adapted, messages=_with_system(adapted.messages, prompt))
    if mode == "constrained":
        adapted = replace(adapted, response_format=turn_schema(
            tools, request.tool_choice, parallel=request.parallel_tool_calls))
    return adapted, mode


def content_call_names(request: ChatRequest, caps: Capabilities, mode: Mode) -> set[str]:
    """Functions whose calls may arrive inside `content` (none: stream text untouched)."""
    if mode == "native" and (not caps.content_tool_calls or request.response_format):
        return set()  # a JSON answer the caller asked for is not a tool call
    return {t.name for t in _offered(request)}


def _offered(request: ChatRequest) -> list[FunctionSpec]:
    if request.tool_choice == "none":
        return []
    if isinstance(request.tool_choice, dict):
        name = request.tool_choice.get("function", {}).get("name")
        return [t for t in request.tools if t.name == name]
    return list(request.tools)


def _without_images(message: ChatMessage) -> ChatMessage:
    if isinstance(message.content, str):
        return message
    texts = [p.get("text") or "" for p in message.content if p.get("type") == "text"]
    if len(texts) < len(message.content):
        texts.append("[image omitted: this model cannot see images]")
    return replace(message, content="\n".join(texts))


def calls_as_text(messages: list[ChatMessage], *, fenced: bool,
                  prose: bool = False) -> list[ChatMessage]:
    """Assistant tool calls as JSON text (or prose), tool results as one user turn per batch."""
    out: list[ChatMessage] = []
    # A result is labelled with its call as the model wrote it, never with the call's id:
    # the model never saw the (random) ids, and they would make every prompt unique.
    calls: dict[str, str] = {}
    in_results = False  # the last turn out is a batch of results: merge into it
    for message in messages:
        if message.role == "tool":
            call = calls.get(message.tool_call_id or "", "a function")
            result = f"Result of {call}:\n{_text(message.content)}"
            if in_results:
                result = f"{_text(out.pop().content)}\n\n{result}"
            out.append(ChatMessage(role="user", content=result))
            in_results = True
            continue
        in_results = False
        if message.role == "assistant" and message.tool_calls:
            calls.update((c.id, f"{c.name}({c.arguments})") for c in message.tool_calls)
            made = {"tool_calls": [{"name": c.name, "arguments": _loads_object(c.arguments)}
                                   for c in message.tool_calls]}
            block = json.dumps(made, ensure_ascii=False)
            block = f"```json\n{block}\n```" if fenced else block
            if prose:
                block = "\n".join(f"I called {c.name} with {c.arguments}."
                                   for c in message.tool_calls)
            text = _text(message.content)
            out.append(ChatMessage(role="assistant", content=f"{text}\n{block}".strip()))
        else:
            out.append(message)
    return out


def _text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text") or "" for p in content if p.get("type") == "text")


def _loads_object(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments  # shown as the model wrote it


def _tools_prompt(tools: list[FunctionSpec], choice: Any, *, constrained: bool) -> str:
    lines = ["You can call these functions:"]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description}" if tool.description
                     else f"- {tool.name}")
        lines.append(f"  parameters: {json.dumps(tool.parameters or {'type': 'object'})}")
    shape = '{"tool_calls": [{"name": "<function>", "arguments": {...}}]}'
    if constrained:
        lines.append(f'Answer with one JSON object: {shape} to call functions, or '
                     '{"message": "<your reply>"} to answer the user.')
    else:
        lines.append(f"To call functions, answer with only this JSON in a ```json block: "
                     f"{shape}. Otherwise answer normally.")
    if choice == "required" or isinstance(choice, dict):
        lines.append("You must call a function now.")
    return "\n".join(lines)


def _with_system(messages: list[ChatMessage], prompt: str) -> list[ChatMessage]:
    # Merged into the first system turn: many templates allow only one, at the start.
    if messages and messages[0].role == "system" and isinstance(messages[0].content, str):
        return [replace(messages[0], content=f"{messages[0].content}\n\n{prompt}"), *messages[1:]]
    return [ChatMessage(role="system", content=prompt), *messages]


def turn_schema(tools: list[FunctionSpec], choice: Any,
                parallel: bool | None = None) -> dict[str, Any]:
    """`response_format` for guided decoding: tool calls, or a message, nothing else.

    `parallel=False` (the run's parallel_tool_calls) allows one call per answer.
    """
    call_items = [{"type": "object", "additionalProperties": False,
                   "required": ["name", "arguments"],
                   "properties": {"name": {"type": "string", "enum": [t.name]},
                                  "arguments": t.parameters or {"type": "object"}}}
                  for t in tools]
    array: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": call_items}}
    if parallel is False:
        array["maxItems"] = 1
    calls = {"type": "object", "additionalProperties": False, "required": ["tool_calls"],
             "properties": {"tool_calls": array}}
    message = {"type": "object", "additionalProperties": False, "required": ["message"],
               "properties": {"message": {"type": "string"}}}
    forced = choice == "required" or isinstance(choice, dict)
    schema = calls if forced else {"oneOf": [calls, message]}
    return {"type": "json_schema", "json_schema": {"name": "assistant_turn", "schema": schema}}


def parse_content_calls(text: str, names: set[str] | None) -> list[ToolCall] | None:
    """Tool calls written into the content, or None when it is not (only) tool calls.

    Accepts a ```json block, `<tool_call>` tags or bare JSON holding {"name", "arguments"},
    {"function": {...}}, {"tool_calls": [...]} or a list of those. All or nothing: an
    undeclared name or non-object arguments mean the content is just text. `names=None`
    takes any name that comes with arguments: whether the text is shaped like a call.
    """
    text = text.strip()
    tagged = _TAGGED.findall(text)
    if tagged and not _TAGGED.sub("", text).strip():
        documents = tagged
    else:
        fence = _FENCE.match(text)
        documents = [fence[1] if fence else text]
    items: list[Any] = []
    for document in documents:
        try:
            decoded = json.loads(document)
        except ValueError:
            return None
        if isinstance(decoded, dict) and isinstance(decoded.get("tool_calls"), list):
            decoded = decoded["tool_calls"]
        items += decoded if isinstance(decoded, list) else [decoded]
    calls = [_call(item, names) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def _call(item: Any, names: set[str] | None) -> ToolCall | None:
    if isinstance(item, dict) and isinstance(item.get("function"), dict):
        item = item["function"]
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    if (item["name"] not in names if names is not None
            else "arguments" not in item and "parameters" not in item):
        return None
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=item["name"],
                    arguments=json.dumps(arguments, ensure_ascii=False))


def parse_turn(text: str, names: set[str]) -> tuple[str, list[ToolCall]]:
    """A constrained answer back as (text, calls); anything unexpected stays text."""
    try:
        decoded = json.loads(text)
    except ValueError:
        return text, []
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return decoded["message"], []
    calls = parse_content_calls(text, names)
    return ("", calls) if calls else (text, [])


def guards_loops(request: ChatRequest, mode: Mode) -> bool:
    """Whether repeated calls are refused: prompted / constrained mode, choice left open."""
    return mode != "native" and request.tool_choice in (None, "auto")


def repeats_answered_calls(calls: list[ToolCall], messages: list[ChatMessage]) -> bool:
    """True when every call was made before with the same arguments and has its result."""
    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    made = {(c.name, _canonical(c.arguments)) for m in messages if m.role == "assistant"
            for c in m.tool_calls if c.id in answered}
    return bool(calls) and all((c.name, _canonical(c.arguments)) in made for c in calls)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return arguments
