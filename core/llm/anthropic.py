"""Anthropic's Messages API, natively: streamed SSE mapped to our neutral deltas.

Retries are off here on purpose, as for every provider: Temporal owns retries.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from core.llm.errors import ProviderError, retry_after_seconds
from core.llm.types import (
    ChatMessage,
    ChatRequest,
    Delta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    TurnOutcome,
    Usage,
)

OnDelta = Callable[[Delta], Awaitable[None]]
API_VERSION = "2023-06-01"
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
           "tool_use": "tool_calls", "max_tokens": "length",
           "model_context_window_exceeded": "length", "refusal": "content_filter"}
# Error types an SSE `error` event carries, as the HTTP status they stand for.
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401,
                 "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                 "rate_limit_error": 429, "api_error": 500, "overloaded_error": 529}


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our content as Anthropic blocks; empty text is dropped (the API rejects it)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media_type, data = url[5:].split(";base64,", 1)
                source = {"type": "base64", "media_type": media_type, "data": data}
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
    return blocks


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        decoded = json.loads(arguments or "{}")
    except ValueError:
        decoded = None
    # tool_use.input must be an object; keep malformed arguments visible rather than lose them.
    return decoded if isinstance(decoded, dict) else {"raw_arguments": arguments}


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "user", "content": [{
            "type": "tool_result", "tool_use_id": message.tool_call_id or "",
            "content": _blocks(message.content) or [{"type": "text", "text": "(empty)"}]}]}
    blocks = _blocks(message.content)
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c.arguments)}
               for c in message.tool_calls]
    return {"role": "user" if message.role == "user" else "assistant", "content": blocks}


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        wire = _wire_message(message)
        if not wire["content"]:
            continue
        if out and out[-1]["role"] == wire["role"]:
            # One turn per role: tool results of a batch (and a user's follow-up) share it.
            out[-1]["content"] += wire["content"]
        else:
            out.append(wire)
    if out and out[0]["role"] != "user":
        # The API wants the conversation to open with the user (a thread may not).
        out.insert(0, {"role": "user", "content": [{"type": "text", "text": "(conversation)"}]})
    return out


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice: dict[str, Any] | None = None
    if request.tool_choice == "none":
        return {"type": "none"}
    if request.tool_choice == "required":
        choice = {"type": "any"}
    elif isinstance(request.tool_choice, dict):
        choice = {"type": "tool", "name": request.tool_choice.get("function", {}).get("name")}
    if request.parallel_tool_calls is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    return choice


def request_to_anthropic(request: ChatRequest, default_max_tokens: int) -> dict[str, Any]:
    system = "\n\n".join(m.content if isinstance(m.content, str)
                         else "\n".join(p.get("text") or "" for p in m.content)
                         for m in request.messages if m.role == "system")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": _messages([m for m in request.messages if m.role != "system"]),
        "max_tokens": request.max_completion_tokens or default_max_tokens,  # required here
        "stream": True,
    }
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [{"name": t.name, "description": t.description or "",
                          "input_schema": t.parameters or {"type": "object", "properties": {}}}
                         for t in request.tools]
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)  # OpenAI's range is 0..2
    elif request.top_p is not None and request.top_p < 1.0:
        # Newer Claude models reject temperature and top_p together; top_p=1 is a no-op anyway.
        body["top_p"] = request.top_p
    return body


def _error(status: int, text: str, headers: httpx.Headers | None = None) -> ProviderError:
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text[:500] or f"HTTP {status}"
    return ProviderError(f"Anthropic returned {status}: {message}", status=status,
                         retry_after=retry_after_seconds(headers) if headers else None)


class _Accumulator:
    """Builds the outcome from Messages API stream events."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.stop_reason: str | None = None
        self.usage = Usage()

    def add(self, event: dict[str, Any]) -> list[Delta]:
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            # Cached prompt tokens are still prompt tokens for the run's usage.
            self.usage.prompt_tokens = sum(usage.get(k) or 0 for k in (
                "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
            self.usage.completion_tokens = usage.get("output_tokens") or 0
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index[int(event.get("index", 0))] = len(self.calls)
                self.calls.append(ToolCall(block.get("id") or "", block.get("name") or "", ""))
                return [ToolCallDelta(index, block.get("id"), block.get("name"), "")]
            if block.get("type") == "text" and block.get("text"):
                return self._text(block["text"])
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return self._text(delta["text"])
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                call = self.tool_index.get(int(event.get("index", 0)))
                if call is not None:
                    self.calls[call].arguments += delta["partial_json"]
                    return [ToolCallDelta(call, None, None, delta["partial_json"])]
            # thinking / signature deltas are not part of the answer.
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            output = (event.get("usage") or {}).get("output_tokens")
            if output is not None:  # cumulative, not an increment
                self.usage.completion_tokens = output
        elif kind == "error":
            error = event.get("error") or {}
            status = _ERROR_STATUS.get(error.get("type", ""), 500)
            raise ProviderError(f"Anthropic stream error: {error.get('message', error)}",
                                status=status)
        return []

    def _text(self, text: str) -> list[Delta]:
        self.text.append(text)
        return [TextDelta(text)]

    def outcome(self) -> TurnOutcome:
        if self.stop_reason is None:
            raise ProviderError("Anthropic stream ended without a stop reason (truncated).")
        finish = _FINISH.get(self.stop_reason, "stop")
        calls = self.calls
        for call in calls:
            call.arguments = call.arguments or "{}"  # a call without input streams no JSON
        if finish == "length":
            calls = []  # a call cut off by max_tokens has unusable arguments
        elif calls:
            finish = "tool_calls"
        return TurnOutcome("".join(self.text), calls, finish, self.usage)


class AnthropicProvider:
    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str | None,
                 default_max_tokens: int = 4096) -> None:
        self._http = http
        self._url = base_url.rstrip("/").removesuffix("/v1") + "/v1/messages"
        self._headers = {"anthropic-version": API_VERSION, "x-api-key": api_key or ""}
        self._max_tokens = default_max_tokens

    async def complete(self, request: ChatRequest, on_delta: OnDelta) -> TurnOutcome:
        body = request_to_anthropic(request, self._max_tokens)
        accumulator = _Accumulator()
        try:
            async with self._http.stream("POST", self._url, json=body,
                                         headers=self._headers) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")
                    raise _error(response.status_code, text, response.headers)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # `event:` lines repeat the data's own "type"
                    try:
                        event = json.loads(line[5:].strip())
                    except ValueError as exc:
                        raise ProviderError(
                            f"Anthropic stream sent malformed data: {line[:200]}") from exc
                    for delta in accumulator.add(event):
                        await on_delta(delta)
                    if event.get("type") == "message_stop":
                        break
        except httpx.TimeoutException as exc:
            raise ProviderError(f"Anthropic timed out ({type(exc).__name__}).") from exc
        except httpx.TransportError as exc:
            raise ProviderError(f"Anthropic unreachable ({type(exc).__name__}).") from exc
        return accumulator.outcome()
