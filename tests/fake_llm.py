"""A deterministic OpenAI-compatible chat-completions server for the test suite.

It is a real HTTP server (uvicorn in a daemon thread with its own event loop) because the
product's worker, possibly in another process, reaches the LLM over HTTP. Behaviour is driven
only by `[[directive]]`s in the last user message, so concurrent tests never interfere:

    [[reply:TEXT]]  [[tokens:N]]  [[call:NAME {json}]] (repeatable)  [[delay:S]]
    [[fail:CODE]] / [[fail:CODExN]]  [[garbage]]  [[truncate]] / [[truncate:N]]  [[tokendelay:MS]]
    [[reply_per_attempt:FIRST|LATER]]  [[after_tool:TEXT]] (the answer after tool results)
    [[delay:S]]: S *seconds* before the response starts; [[tokendelay:MS]]: before each piece
    [[pause:N:MS]] sends the opening chunk and the first N pieces (words, or a call's header
        then its arguments 8 characters at a time), then is silent MS ms, on every request
        (the answer after tool results too): `pause:0:30000` first token after 30 s,
        `pause:3:20000` a 20 s pause mid-answer, `pause:1:30000` with a call: its arguments.
    [[content_call:NAME {json}]] (a tool call written as a ```json block in `content`)
    [[repeat_ids]] (repeat id, type and name in every streamed tool-call chunk)
    [[string_tool_choice]] (reject an object `tool_choice` with 400, as some servers do)
    [[reject_tools]] (400 for any request with `tools`, as vLLM without its tool parser)
`fake.scripts[MODEL] = "[[...]]"` scripts user text that has none (e.g. the README examples')
for requests naming MODEL. Also serves `/v1/embeddings` (hashed bag of words, see embed_text).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from tests.fake_llm_directives import content_text, parse_directives

Json = dict[str, Any]
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_exceeded"}
def error_response(status: int, message: str) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    headers = {"Retry-After": "1"} if status == 429 else None
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


EMBEDDING_DIMENSIONS = 256


def embed_text(text: str) -> list[float]:
    """The fake's embedding of `text` (exposed so tests can reason about similarity)."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "big") % EMBEDDING_DIMENSIONS] += (
            1.0 if digest[4] & 1 else -1.0)
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:  # no words: any fixed unit vector (cosine of a zero vector is undefined)
        return [1.0] + [0.0] * (EMBEDDING_DIMENSIONS - 1)
    return [x / norm for x in vector]


class _CutStream(StreamingResponse):
    """A stream that ends without the final empty chunk, so uvicorn drops the connection
    mid-body: the client sees a genuinely truncated response, not a clean EOF."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            body = chunk if isinstance(chunk, bytes) else str(chunk).encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[Json] = []
        self.scripts: dict[str, str] = {}  # model -> directives for text that has none
        self._lock = threading.Lock()
        self._fail_counts: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._ids = itertools.count(1)  # never reset, so tool-call ids stay unique per server
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))  # port known before start, no bind race
        self.port: int = self._sock.getsockname()[1]
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/_requests", self._log, methods=["GET"]),
        ])
        # log_config=None: never reconfigure the process-wide logging the product relies on.
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"fake-llm-{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake LLM server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()  # in place, so references held by tests stay valid
            self._fail_counts.clear()
            self._attempts.clear()

    def requests_containing(self, marker: str) -> list[Json]:
        with self._lock:
            return [body for body in self.requests
                    if any(marker in content_text(m.get("content"))
                           for m in body.get("messages") or [] if isinstance(m, dict))]

    async def _models(self, request: Request) -> Response:
        model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
        return JSONResponse({"object": "list", "data": [model]})

    async def _embeddings(self, request: Request) -> Response:
        """embed_text of each input; `[[embedfail]]` in one: a 500; `[[embeddelay:S]]`: S s late."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error_response(400, "Request body is not valid JSON.")
        inputs = body.get("input") if isinstance(body, dict) else None
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return error_response(400, "'input' must be a string or an array of strings.")
        if any("[[embedfail]]" in t for t in inputs):
            return error_response(500, "Injected embeddings failure.")
        await asyncio.sleep(sum(map(float, re.findall(r"embeddelay:([\d.]+)", " ".join(inputs)))))
        data = [{"object": "embedding", "index": i, "embedding": embed_text(t)}
                for i, t in enumerate(inputs)]
        tokens = sum(len(t.split()) for t in inputs)
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _log(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(list(self.requests))

    async def _chat(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error_response(400, "Request body is not valid JSON.")
        if isinstance(body, dict):
            with self._lock:
                self.requests.append(body)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return error_response(400, "'messages' is a required property.")
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        user_text = content_text(messages[user].get("content")) if user >= 0 else ""
        d = parse_directives(user_text if "[[" in user_text
                             else self.scripts.get(str(body.get("model")), "") + user_text)
        tool_results = [content_text(m.get("content")) for m in messages[user + 1:]
                        if m.get("role") == "tool"]
        calls: list[tuple[str, str]] = []
        token_delay = 0.0
        pause_after, _, pause_ms = d.options.get("pause", "").partition(":")
        pause = (int(pause_after), float(pause_ms) / 1000) if pause_ms else None
        if tool_results:  # the second leg of a tool round trip: only after_tool applies
            answer = d.options.get("after_tool", "Tool results: " + " | ".join(tool_results))
            garbage = truncate = False
        else:
            if "delay" in d.options:
                await asyncio.sleep(float(d.options["delay"]))
            if "string_tool_choice" in d.options and isinstance(body.get("tool_choice"), dict):
                return error_response(400, "tool_choice must be a string.")
            if "reject_tools" in d.options and body.get("tools"):
                return error_response(400, '"auto" tool choice requires '
                                      "--enable-auto-tool-choice and --tool-call-parser to be set")
            if "fail" in d.options:
                code, _, times = d.options["fail"].strip().partition("x")
                with self._lock:  # counted per exact user text so each test has its own
                    seen = self._fail_counts[user_text] = self._fail_counts.get(user_text, 0) + 1
                if not times or seen <= int(times):
                    return error_response(int(code), f"Injected failure {code} ({seen}).")
            garbage, truncate = "garbage" in d.options, "truncate" in d.options
            with self._lock:  # which attempt this is, per exact user text
                attempt = self._attempts[user_text] = self._attempts.get(user_text, 0) + 1
            if truncate and d.options["truncate"].strip():
                # [[truncate:N]]: only the first N attempts are cut off.
                truncate = attempt <= int(d.options["truncate"])
            token_delay = float(d.options.get("tokendelay", 0)) / 1000
            known = {t.get("function", {}).get("name") for t in body.get("tools") or []
                     if isinstance(t, dict)}
            unknown = [name for name, _ in d.calls if name not in known]
            if unknown:
                answer = f"Unknown tool {unknown[0]}"
            elif d.calls:
                calls, answer = d.calls, ""
            elif "content_call" in d.options:  # as open models without tool parsers do
                name, _, args = d.options["content_call"].strip().partition(" ")
                block = json.dumps({"name": name, "arguments": json.loads(args or "{}")})
                answer = f"```json\n{block}\n```"
            elif "reply" in d.options:
                answer = d.options["reply"]
            elif "reply_per_attempt" in d.options:  # [[reply_per_attempt:FIRST|LATER]]
                first, _, later = d.options["reply_per_attempt"].partition("|")
                answer = first if attempt == 1 else later
            elif "tokens" in d.options:
                answer = " ".join(f"w{i}" for i in range(1, int(d.options["tokens"]) + 1))
            else:
                answer = "Echo: " + d.text
        finish = "tool_calls" if calls else "stop"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if not calls and isinstance(limit, int) and len(answer.split()) > limit:
            answer, finish = " ".join(answer.split()[:limit]), "length"
        tool_calls: list[Json] = [{"id": f"call_{next(self._ids):06d}{uuid.uuid4().hex[:8]}",
                       "type": "function", "function": {"name": name, "arguments": args}}
                      for name, args in calls]
        prompt = max(1, sum(len(content_text(m.get("content"))) for m in messages) // 4)
        completion = (sum(1 + len(a.split()) for _, a in calls) if calls
                      else max(1, len(answer.split())))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                "model": body.get("model", "fake-model")}
        if not body.get("stream"):
            if pause:
                await asyncio.sleep(pause[1])
            if garbage:
                return Response('{"choices": [ this is not json', media_type="application/json")
            message: Json = {"role": "assistant", "content": None if calls else answer}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]})

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        deltas: list[Json] = [{"content": p} for p in re.findall(r"\S+\s*|\s+", answer)]
        for i, call in enumerate(tool_calls):  # OpenAI shape: header first, then argument pieces
            fn = call["function"]
            deltas.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                           "function": {"name": fn["name"], "arguments": ""}}]})
            pieces = [fn["arguments"][j:j + 8] for j in range(0, len(fn["arguments"]), 8)]
            # Some servers (e.g. older vLLM parsers) repeat the header in every chunk.
            header = ({"id": call["id"], "type": "function"} if "repeat_ids" in d.options
                      else {})
            named = {"name": fn["name"]} if header else {}
            deltas += [{"tool_calls": [{"index": i, **header,
                                        "function": {**named, "arguments": p}}]} for p in pieces]
        if truncate:
            deltas = deltas[:max(1, min(3, len(deltas) - 1))]

        def event(delta: Json | None, finish_reason: str | None = None, **extra: Any) -> str:
            chunk: Json = {**base, "object": "chat.completion.chunk", "choices": [] if delta is None
                           else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            if include_usage:
                chunk["usage"] = None  # as OpenAI does: null on every chunk but the last
            return f"data: {json.dumps({**chunk, **extra})}\n\n"

        async def events() -> AsyncIterator[str]:
            yield event({"role": "assistant", "content": ""})
            if garbage:
                yield 'data: {"choices": [ this is not json\n\n'
                yield "data: [DONE]\n\n"
                return
            for i, delta in enumerate(deltas):
                if pause and i == pause[0]:
                    await asyncio.sleep(pause[1])
                if token_delay:
                    await asyncio.sleep(token_delay)
                yield event(delta)
            if truncate:
                return  # _CutStream then drops the connection
            yield event({}, finish)
            if include_usage:
                yield event(None, usage=usage)
            yield "data: [DONE]\n\n"

        cls = _CutStream if truncate else StreamingResponse
        return cls(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
