"""Each adapter against the streamed bytes of each server family (tests/provider_fixtures/).

llama_cpp.json is recorded from a real llama.cpp server; the others are hand-written to
each server's documented format and habits (their `header` says so). A fixture's response
body is replayed through httpx.MockTransport into the real provider code, and the request
the adapter sends is checked against the request in the fixture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.llm.anthropic import AnthropicProvider
from core.llm.models import Capabilities
from core.llm.openai_compatible import OpenAICompatibleProvider
from core.llm.types import ChatMessage, ChatRequest, Delta, FunctionSpec, TextDelta, TurnOutcome

FIXTURES = Path(__file__).parent / "provider_fixtures"
ANY_ID = "<generated>"  # a call id the adapter makes up (calls parsed from the content)

# (family, exchange) -> text, [(name, arguments)], finish_reason, (prompt, completion), deltas.
# Deltas: ("text", text) or ("call", index, id, name, arguments).
EXPECTED: dict[tuple[str, str], dict[str, Any]] = {
    ("llama_cpp", "text"): {
        "text": "Hello, welcome to my little corner of the world.", "calls": [],
        "finish": "stop", "usage": (36, 12),
        "deltas": [("text", t) for t in ("Hello", ",", " welcome", " to", " my", " little",
                                         " corner", " of", " the", " world", ".")]},
    ("llama_cpp", "constrained_tool_call"): {
        "text": "", "calls": [("get_weather", {"city": "Paris"})],
        "finish": "tool_calls", "usage": (118, 40),
        "deltas": [("call", 0, ANY_ID, "get_weather", '{"city": "Paris"}')]},
    ("vllm", "parallel_tool_calls"): {
        "text": "", "calls": [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})],
        "finish": "tool_calls", "usage": (187, 44),
        "deltas": [("call", 0, "chatcmpl-tool-3b1f0c7a2d9e4f6a8c5b", "get_weather", ""),
                   ("call", 0, None, None, '{"city": '), ("call", 0, None, None, '"Paris"}'),
                   ("call", 1, "chatcmpl-tool-9e7d5c3b1a0f4e2d6c8a", "get_weather", ""),
                   ("call", 1, None, None, '{"city": '), ("call", 1, None, None, '"Oslo"}')]},
    ("ollama", "tool_call_whole_with_finish_stop"): {
        "text": "", "calls": [("get_weather", {"city": "Paris"})],
        "finish": "tool_calls", "usage": (161, 18),  # Ollama said "stop"
        "deltas": [("call", 0, "call_x7k2m9qa", "get_weather", '{"city":"Paris"}')]},
    ("fastchat", "text"): {
        "text": "Hello! How can I help you today?", "calls": [],
        "finish": "stop", "usage": (0, 0),  # FastChat never reports usage in a stream
        "deltas": [("text", t) for t in ("Hello", "! How", " can I help", " you today?")]},
    ("openai", "tool_call"): {
        "text": "", "calls": [("get_weather", {"city": "Paris"})],
        "finish": "tool_calls", "usage": (58, 15),
        "deltas": [("call", 0, "call_Yq3x8ZkT2mN5pR7sV9wB1cD4", "get_weather", ""),
                   *[("call", 0, None, None, p) for p in ('{"', "city", '":"', "Paris", '"}')]]},
    ("anthropic", "text_then_tool_use"): {
        "text": "Let me check the weather.", "calls": [("get_weather", {"city": "Paris"})],
        "finish": "tool_calls", "usage": (572, 89),  # cached prompt tokens count as prompt
        "deltas": [("text", "Let me check"), ("text", " the weather."),
                   ("call", 0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", ""),
                   *[("call", 0, None, None, p) for p in ('{"city', '": "Par', 'is"}')]]},
}


def _load(family: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((FIXTURES / f"{family}.json").read_text(encoding="utf-8"))
    return fixture


def _cases() -> list[Any]:
    return [pytest.param(family, exchange["name"], id=f"{family}-{exchange['name']}")
            for family in sorted(p.stem for p in FIXTURES.glob("*.json"))
            for exchange in _load(family)["exchanges"]]


def _chat_request(spec: dict[str, Any]) -> ChatRequest:
    return ChatRequest(**{**spec, "messages": [ChatMessage(**m) for m in spec["messages"]],
                          "tools": [FunctionSpec(**t) for t in spec.get("tools", [])]})


def _delta(delta: Delta) -> tuple[Any, ...]:
    if isinstance(delta, TextDelta):
        return ("text", delta.text)
    return ("call", delta.index, delta.id, delta.name, delta.arguments)


def test_every_fixture_says_where_it_comes_from() -> None:
    for path in FIXTURES.glob("*.json"):
        header = _load(path.stem)["header"]
        if path.stem == "llama_cpp":
            assert header.startswith("recorded from llama.cpp (xllamacpp "), header
        else:
            assert header == "hand-written to the documented format; not a recording", path
    assert {k[0] for k in EXPECTED} == {p.stem for p in FIXTURES.glob("*.json")}


@pytest.mark.parametrize(("family", "name"), _cases())
async def test_fixture_replays_through_the_adapter(family: str, name: str) -> None:
    exchange = next(e for e in _load(family)["exchanges"] if e["name"] == name)
    expected = EXPECTED[(family, name)]
    sent: list[httpx.Request] = []

    def replay(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(exchange["response_status"],
                              headers={"content-type": exchange["response_content_type"]},
                              content=exchange["response_body"].encode("utf-8"))

    async with httpx.AsyncClient(transport=httpx.MockTransport(replay)) as http:
        if family == "anthropic":
            provider: Any = AnthropicProvider(http, "https://api.anthropic.test", "k")
        else:
            caps = Capabilities(**exchange.get("capabilities", {}))
            provider = OpenAICompatibleProvider(http, "http://llm.test/v1", "k", caps)
        deltas: list[Delta] = []

        async def on_delta(delta: Delta) -> None:
            deltas.append(delta)

        outcome: TurnOutcome = await provider.complete(_chat_request(exchange["chat_request"]),
                                                       on_delta)

    # The request: one POST, and every field of the fixture's request sent as recorded.
    assert len(sent) == 1
    body = json.loads(sent[0].content)
    path = "/v1/messages" if family == "anthropic" else "/v1/chat/completions"
    assert sent[0].method == "POST" and sent[0].url.path == path
    for key, value in exchange["request"].items():
        assert body.get(key) == value, key
    assert body["stream"] is True
    for header, value in exchange.get("request_headers", {}).items():
        assert sent[0].headers[header] == value

    # The outcome.
    assert outcome.text == expected["text"]
    assert [(c.name, json.loads(c.arguments)) for c in outcome.tool_calls] == expected["calls"]
    assert all(c.id for c in outcome.tool_calls)
    assert outcome.finish_reason == expected["finish"]
    assert (outcome.usage.prompt_tokens, outcome.usage.completion_tokens) == expected["usage"]

    # The deltas, in order; ids the adapter generates are only checked to be there.
    seen = [_delta(d) for d in deltas]
    want = expected["deltas"]
    seen = [(*d[:2], ANY_ID, *d[3:]) if len(d) > 2 and w[2] == ANY_ID and d[2] else d
            for d, w in zip(seen, want, strict=False)] + seen[len(want):]
    assert seen == want
