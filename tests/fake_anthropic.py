"""A deterministic Anthropic Messages API server for the test suite (see tests/fake_llm.py).

It streams real Messages API SSE events, records every request with its headers, and checks
requests the way the real API does (key, version header, max_tokens, roles, tool_use and
tool_result pairing). Behaviour is driven by `[[directive]]`s in the last user text:

    [[reply:TEXT]]  [[tokens:N]]  [[call:NAME {json}]] (repeatable)  [[preamble:TEXT]]
    [[fail:CODE]] / [[fail:CODExN]]  [[stream_error:TYPE]]  [[truncate]]
    [[after_tool:TEXT]] (answer once tool results follow the user text)
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fake_llm import FakeLLM
from tests.fake_llm_directives import parse_directives

Json = dict[str, Any]
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                500: "api_error", 529: "overloaded_error"}


def error_response(status: int, message: str) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "api_error")
    headers = {"retry-after": "1"} if status == 429 else None
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}},
                        status_code=status, headers=headers)


def _blocks(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def validate(body: Any, headers: Json) -> str | None:
    """What the real API would reject this request for (None: accepted)."""
    if not isinstance(body, dict):
        return "body must be an object"
    if not headers.get("anthropic-version"):
        return "anthropic-version: header is required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Unexpected role {role!r}"
        blocks = _blocks(message["content"])
        if not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if pending - results or results - pending:
            return (f"messages.{i}: tool_use ids must have tool_result blocks "
                    "immediately after, and only then")
        for block in blocks:
            if block.get("type") == "text" and not block.get("text"):
                return f"messages.{i}: text content blocks must be non-empty"
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        if pending and not body.get("tools"):
            return "Requests which include `tool_use` blocks must define tools."
    if messages[0]["role"] != "user":
        return "messages: first message must use the user role"
    return None


class FakeAnthropic(FakeLLM):
    """Same lifecycle as FakeLLM (a real HTTP server in a thread); Anthropic's wire format."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[Json] = []  # per request, parallel to self.requests
        self._ids = itertools.count(1)
        self._server.config.app = Starlette(routes=[
            Route("/v1/messages", self._messages, methods=["POST"])])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.headers.clear()

    def requests_containing(self, marker: str) -> list[Json]:
        with self._lock:
            return [body for body in self.requests if marker in json.dumps(body)]

    def headers_for(self, body: Json) -> Json:
        with self._lock:
            return self.headers[next(i for i, b in enumerate(self.requests) if b is body)]

    async def _messages(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error_response(400, "Request body is not valid JSON.")
        headers = {k: request.headers.get(k) for k in ("x-api-key", "anthropic-version")}
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
        if not headers["x-api-key"]:
            return error_response(401, "x-api-key header is required")
        if problem := validate(body, headers):
            return error_response(400, problem)
        messages = body["messages"]
        prompt = max(i for i, m in enumerate(messages) if m["role"] == "user" and not any(
            b.get("type") == "tool_result" for b in _blocks(m["content"])))
        text = "".join(b.get("text") or "" for b in _blocks(messages[prompt]["content"]))
        d = parse_directives(text)
        results = [json.dumps(b.get("content")) if not isinstance(b.get("content"), list)
                   else "".join(c.get("text", "") for c in b["content"])
                   for m in messages[prompt + 1:] for b in _blocks(m["content"])
                   if b.get("type") == "tool_result"]
        calls: list[tuple[str, str]] = []
        preamble = ""
        if results:
            answer = d.options.get("after_tool", "Tool results: " + " | ".join(results))
        else:
            if "fail" in d.options:
                code, _, times = d.options["fail"].strip().partition("x")
                with self._lock:
                    seen = self._fail_counts[text] = self._fail_counts.get(text, 0) + 1
                if not times or seen <= int(times):
                    return error_response(int(code), f"Injected failure {code} ({seen}).")
            known = {t.get("name") for t in body.get("tools") or []}
            if unknown := [n for n, _ in d.calls if n not in known]:
                answer = f"Unknown tool {unknown[0]}"
            elif d.calls:
                calls, answer, preamble = d.calls, "", d.options.get("preamble", "")
            elif "reply" in d.options:
                answer = d.options["reply"]
            elif "tokens" in d.options:
                answer = " ".join(f"w{i}" for i in range(1, int(d.options["tokens"]) + 1))
            else:
                answer = "Echo: " + d.text
        stop = "tool_use" if calls else "end_turn"
        if not calls and len(answer.split()) > body["max_tokens"]:
            answer, stop = " ".join(answer.split()[:body["max_tokens"]]), "max_tokens"
        text_out = preamble or answer
        content: list[Json] = [{"type": "text", "text": text_out}] if text_out else []
        content += [{"type": "tool_use", "id": f"toolu_{next(self._ids):04d}{uuid.uuid4().hex[:8]}",
                     "name": name, "input": json.loads(args)} for name, args in calls]
        usage = {"input_tokens": max(1, len(json.dumps(messages)) // 4),
                 "output_tokens": max(1, len(answer.split()) + 3 * len(calls))}
        message = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
                   "model": body.get("model"), "content": content, "stop_reason": stop,
                   "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return JSONResponse(message)
        return StreamingResponse(self._events(message, d.options),
                                 media_type="text/event-stream")

    async def _events(self, message: Json, options: dict[str, str]) -> AsyncIterator[str]:
        def sse(data: Json) -> str:
            return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**message["usage"], "output_tokens": 1}}
        yield sse({"type": "message_start", "message": start})
        yield sse({"type": "ping"})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield sse({"type": "content_block_start", "index": index,
                           "content_block": {"type": "text", "text": ""}})
                for piece in re.findall(r"\S+\s*|\s+", block["text"]):
                    yield sse({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": piece}})
            else:
                yield sse({"type": "content_block_start", "index": index,
                           "content_block": {**block, "input": {}}})
                raw = json.dumps(block["input"])
                for j in range(0, len(raw), 8):
                    yield sse({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta",
                                         "partial_json": raw[j:j + 8]}})
            if "stream_error" in options:
                kind = options["stream_error"] or "overloaded_error"
                yield sse({"type": "error", "error": {"type": kind, "message": "Overloaded"}})
                return
            if "truncate" in options:
                return
            yield sse({"type": "content_block_stop", "index": index})
        yield sse({"type": "message_delta", "usage": {"output_tokens": message["usage"][
            "output_tokens"]}, "delta": {"stop_reason": message["stop_reason"],
                                          "stop_sequence": None}})
        yield sse({"type": "message_stop"})
