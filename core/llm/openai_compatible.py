"""OpenAI-compatible chat completions (vLLM, Ollama, llama.cpp, FastChat, OpenAI, ...).

Always streams: deltas are handed to `on_delta` as they arrive so callers can
relay tokens, and a slow model still shows progress (and heartbeats).
Retries are off here on purpose: Temporal owns retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx

from core.llm import detect
from core.llm.content_gate import ContentGate
from core.llm.errors import ProviderError, retry_after_seconds
from core.llm.models import Capabilities
from core.llm.quirks import (
    adapt_request,
    content_call_names,
    guards_loops,
    repeats_answered_calls,
)
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
logger = logging.getLogger(__name__)


def message_to_openai(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # Some servers (llama.cpp) answer 500 to `content: null`; "" is accepted everywhere.
        wire["content"] = message.content or ""
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def request_to_openai(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,  # sent as given: no prefix stripping
        "messages": [message_to_openai(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {
                k: v for k, v in (("name", t.name), ("description", t.description),
                                  ("parameters", t.parameters), ("strict", t.strict))
                if v is not None}}
            for t in request.tools
        ]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_completion_tokens,
        "response_format": request.response_format,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _error_from_response(status: int, text: str, headers: httpx.Headers) -> ProviderError:
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text[:500] or f"HTTP {status}"
    return ProviderError(f"Model provider returned {status}: {message}", status=status,
                         retry_after=retry_after_seconds(headers))


class _Accumulator:
    """Builds the final outcome from streamed chunks."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, ToolCall] = {}
        self.finish_reason: str | None = None
        self.usage = Usage()

    def add(self, chunk: dict[str, Any]) -> list[Delta]:
        deltas: list[Delta] = []
        if chunk.get("usage"):
            self.usage = Usage(chunk["usage"].get("prompt_tokens") or 0,
                               chunk["usage"].get("completion_tokens") or 0)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
                deltas.append(TextDelta(delta["content"]))
            for call in delta.get("tool_calls") or []:
                deltas.append(self._add_call(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return deltas

    def _add_call(self, call: dict[str, Any]) -> ToolCallDelta:
        index = int(call.get("index", len(self.calls)))
        function = call.get("function") or {}
        known = self.calls.get(index)
        if known is None:
            known = self.calls[index] = ToolCall(id="", name="", arguments="")
        # Some servers repeat id and name in every chunk: keep the first, never concatenate.
        new_id = call.get("id") if not known.id else None
        known.id = known.id or call.get("id") or ""
        new_name = function.get("name") if not known.name else None
        known.name = known.name or function.get("name") or ""
        arguments = function.get("arguments") or ""
        known.arguments += arguments
        return ToolCallDelta(index=index, id=new_id, name=new_name, arguments=arguments)

    def outcome(self) -> TurnOutcome:
        calls = [self.calls[i] for i in sorted(self.calls)]
        if self.finish_reason is None:
            raise ProviderError("Model stream ended without a finish reason (truncated).")
        # Ollama ends a turn that called functions with "stop": calls made mean "tool_calls".
        finish = "tool_calls" if calls and self.finish_reason == "stop" else self.finish_reason
        return TurnOutcome(text="".join(self.text), tool_calls=calls,
                           finish_reason=finish, usage=self.usage)


class OpenAICompatibleProvider:
    """One server. `detect`: capabilities were not configured, find them out (detect.py)."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str | None,
                 capabilities: Capabilities | None = None, *, detect: bool = False) -> None:
        self._http = http
        self._base_url = base_url
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._caps = capabilities or Capabilities()
        self._detect = detect
        self._probed = not detect
        self._probe_lock = asyncio.Lock()
        self._fallbacks: dict[str, Capabilities] = {}  # by model, after tools were refused

    async def complete(self, request: ChatRequest, on_delta: OnDelta) -> TurnOutcome:
        caps = await self.capabilities(request.model)
        try:
            return await self._turn(request, caps, on_delta)
        except ProviderError as error:
            if not self._detect or not detect.rejects_tools(error, request, caps):
                raise
            # Refused before anything streamed: send it again the way the server takes it.
            fallback = self._fallbacks.setdefault(request.model, detect.prompted(caps))
            logger.warning("%s refused function calling for model %r (%s); using %s mode "
                           "for it from now on. Set its capabilities in MODELS to choose.",
                           self._base_url, request.model, error.message,
                           detect.describe(fallback))
            return await self._turn(request, fallback, on_delta)

    async def capabilities(self, model: str) -> Capabilities:
        """Configured, else detected: llama.cpp's /props once, then refusals per model."""
        if not self._probed:
            async with self._probe_lock:
                if not self._probed:
                    await self._probe()
        return self._fallbacks.get(model, self._caps)

    async def _probe(self) -> None:
        try:
            found = await detect.probe_llama_cpp(self._http, self._base_url, self._headers)
        except httpx.ConnectError:
            return  # not up (yet): the request itself will say so; probe next time
        except httpx.HTTPError:
            found = None  # a server that hangs on /props is not asked twice
        self._probed = True
        if found is None or found == self._caps:
            return
        changed = found.native_tools != self._caps.native_tools
        self._caps = found
        logger.log(logging.WARNING if changed else logging.INFO,
                   "%s is llama.cpp: its model's chat template %s tools, so %s mode "
                   "(vision %s). Set capabilities in MODELS to choose.", self._base_url,
                   "takes" if found.native_tools else "cannot take",
                   detect.describe(found), "on" if found.vision else "off")

    async def _turn(self, request: ChatRequest, caps: Capabilities,
                    on_delta: OnDelta) -> TurnOutcome:
        adapted, mode = adapt_request(request, caps)
        gate = ContentGate(on_delta, mode, content_call_names(request, caps, mode))
        outcome = await self._stream(request_to_openai(adapted), gate.on_delta)
        refuse = None
        if guards_loops(request, mode):
            def refuse(calls: list[ToolCall]) -> bool:
                return repeats_answered_calls(calls, request.messages)
        finished = await gate.finish(outcome, refuse)
        if finished is not None:
            return finished
        # The model asked again for results it has: have it answer from them instead.
        answer = await self._turn(replace(request, tool_choice="none"), caps, on_delta)
        usage = Usage(outcome.usage.prompt_tokens + answer.usage.prompt_tokens,
                      outcome.usage.completion_tokens + answer.usage.completion_tokens)
        return replace(answer, usage=usage)

    async def _stream(self, body: dict[str, Any], on_delta: OnDelta) -> TurnOutcome:
        accumulator = _Accumulator()
        try:
            async with self._http.stream("POST", self._url, json=body,
                                         headers=self._headers) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")
                    raise _error_from_response(response.status_code, text, response.headers)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server that ignores "stream": one JSON completion.
                    await self._single(await response.aread(), accumulator, on_delta)
                    return accumulator.outcome()
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError as exc:
                        raise ProviderError(
                            f"Model stream sent malformed data: {data[:200]}") from exc
                    if "error" in chunk:
                        raise ProviderError(f"Model stream error: {chunk['error']}")
                    for delta in accumulator.add(chunk):
                        await on_delta(delta)
        except httpx.TimeoutException as exc:
            raise ProviderError(f"Model provider timed out ({type(exc).__name__}).") from exc
        except httpx.TransportError as exc:
            raise ProviderError(f"Model provider unreachable ({type(exc).__name__}).") from exc
        return accumulator.outcome()

    async def _single(self, raw: bytes, accumulator: _Accumulator, on_delta: OnDelta) -> None:
        try:
            completion = json.loads(raw)
            choice = completion["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(f"Model provider sent malformed JSON: {raw[:200]!r}") from exc
        message = choice.get("message") or {}
        chunk = {"usage": completion.get("usage"), "choices": [{
            "delta": {"content": message.get("content"), "tool_calls": [
                {**call, "index": i} for i, call in enumerate(message.get("tool_calls") or [])]},
            "finish_reason": choice.get("finish_reason") or "stop"}]}
        for delta in accumulator.add(chunk):
            await on_delta(delta)
