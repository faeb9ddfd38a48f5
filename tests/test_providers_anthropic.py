"""Anthropic's Messages API, natively, against the fake Anthropic server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.llm.anthropic import AnthropicProvider, request_to_anthropic
from core.llm.errors import ProviderError
from core.llm.types import ChatMessage, ChatRequest, TextDelta, ToolCallDelta
from tests.fake_anthropic import FakeAnthropic
from tests.llm_helpers import ADD, WEATHER, history, turn


@pytest.fixture
async def llm_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def anthropic_provider(llm_http: httpx.AsyncClient, fake: FakeAnthropic,
                       key: str = "anthropic-test-key") -> AnthropicProvider:
    return AnthropicProvider(llm_http, fake.base_url, key, default_max_tokens=64)


async def test_anthropic_streams_text_with_its_headers_and_system(
        llm_http: httpx.AsyncClient, fake_anthropic: FakeAnthropic) -> None:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "a-text [[reply:Hi there you]]")]
    outcome, deltas = await turn(anthropic_provider(llm_http, fake_anthropic), messages)
    assert (outcome.text, outcome.finish_reason) == ("Hi there you", "stop")
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["Hi ", "there ", "you"]
    assert outcome.usage.prompt_tokens > 0 and outcome.usage.completion_tokens == 3
    body = fake_anthropic.requests_containing("a-text")[-1]
    assert body["system"] == "Be brief." and body["max_tokens"] == 64 and body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert fake_anthropic.headers_for(body) == {"x-api-key": "anthropic-test-key",
                                                "anthropic-version": "2023-06-01"}


async def test_anthropic_tool_use_becomes_tool_calls(llm_http: httpx.AsyncClient,
                                                     fake_anthropic: FakeAnthropic) -> None:
    text = '[[preamble:Checking.]] [[call:get_weather {"city": "Lima"}]] [[call:add {}]]'
    outcome, deltas = await turn(anthropic_provider(llm_http, fake_anthropic), text, [WEATHER, ADD])
    assert outcome.finish_reason == "tool_calls" and outcome.text == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in outcome.tool_calls] == [
        ("get_weather", {"city": "Lima"}), ("add", {})]
    assert all(c.id.startswith("toolu_") for c in outcome.tool_calls)
    headers = [(d.index, d.name) for d in deltas if isinstance(d, ToolCallDelta) and d.id]
    assert headers == [(0, "get_weather"), (1, "add")]


async def test_anthropic_gets_tool_use_and_tool_result_blocks(
        llm_http: httpx.AsyncClient, fake_anthropic: FakeAnthropic) -> None:
    outcome, _ = await turn(anthropic_provider(llm_http, fake_anthropic), history("a-round-trip"),
                            [WEATHER, ADD], tool_choice="required", parallel_tool_calls=False)
    assert outcome.text == "Tool results: 18C | 3"  # the fake accepted the pairing
    body = fake_anthropic.requests_containing("a-round-trip")[-1]
    assert body["system"] == "Be brief."
    assistant, results = body["messages"][1:]
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "add", "input": {}}]
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_a", "content": [{"type": "text", "text": "18C"}]},
        {"type": "tool_result", "tool_use_id": "call_b", "content": [{"type": "text", "text": "3"}]}]}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["tools"][0] == {"name": "get_weather", "description": "Weather in a city",
                                "input_schema": WEATHER.parameters}


@pytest.mark.parametrize(("choice", "wire"), [
    (None, None), ("auto", None), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "add"}}, {"type": "tool", "name": "add"})])
def test_anthropic_tool_choice(choice: Any, wire: Any) -> None:
    request = ChatRequest("claude-x", [ChatMessage("user", "hi")], [ADD], tool_choice=choice,
                          temperature=1.7, max_completion_tokens=5)
    body = request_to_anthropic(request, 4096)
    assert body.get("tool_choice") == wire
    assert body["temperature"] == 1.0 and body["max_tokens"] == 5


async def test_anthropic_max_tokens_is_length(llm_http: httpx.AsyncClient,
                                              fake_anthropic: FakeAnthropic) -> None:
    outcome, _ = await turn(anthropic_provider(llm_http, fake_anthropic), "[[tokens:10]]",
                            max_completion_tokens=3)
    assert (outcome.text, outcome.finish_reason) == ("w1 w2 w3", "length")


@pytest.mark.parametrize(("text", "key", "code", "retryable", "retry_after"), [
    ("[[fail:429]]", "k", "rate_limit_exceeded", True, 1.0),
    ("[[fail:529]]", "k", "server_error", True, None),
    ("[[fail:400]]", "k", "invalid_prompt", False, None),
    ("hello", "", "invalid_prompt", False, None),  # no key: 401
    ("[[stream_error:overloaded_error]]", "k", "server_error", True, None),
    ("[[truncate]]", "k", "server_error", True, None),
])
async def test_anthropic_errors(llm_http: httpx.AsyncClient, fake_anthropic: FakeAnthropic, text: str,
                                key: str, code: str, retryable: bool,
                                retry_after: float | None) -> None:
    with pytest.raises(ProviderError) as caught:
        await turn(anthropic_provider(llm_http, fake_anthropic, key), text)
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert caught.value.retry_after == retry_after
    assert "anthropic-test-key" not in caught.value.message
