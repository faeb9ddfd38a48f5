"""Capabilities detected at first use (core/llm/detect.py) and the repeated-call guard."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.llm.detect import probe_llama_cpp, server_root
from core.llm.errors import ProviderError
from core.llm.models import Capabilities, ModelTable, load_entries
from core.llm.openai_compatible import OpenAICompatibleProvider
from core.llm.quirks import adapt_request, repeats_answered_calls
from core.llm.router import ProviderRouter
from core.llm.types import ChatMessage, ChatRequest, TextDelta, ToolCall, ToolCallDelta
from tests.fake_llm import FakeLLM
from tests.llm_helpers import ADD, WEATHER, ignore, turn

REFUSED = "refused function calling"


@pytest.fixture
async def llm_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def refusal_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and REFUSED in r.getMessage()]


# --- A server that refuses `tools` -------------------------------------------------------------

async def test_refused_tools_switch_the_model_to_prompted_mode_once(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    provider = OpenAICompatibleProvider(llm_http, fake_llm.base_url, "k", detect=True)
    text = 'refused-tools [[reject_tools]] [[content_call:get_weather {"city": "Oslo"}]]'
    with caplog.at_level(logging.WARNING):
        outcome, deltas = await turn(provider, text, [WEATHER])
    # The refused request is sent again at once, in prompted mode: the run goes on.
    assert [(c.name, json.loads(c.arguments)) for c in outcome.tool_calls] == [
        ("get_weather", {"city": "Oslo"})]
    assert not any(isinstance(d, TextDelta) for d in deltas)
    first, second = fake_llm.requests_containing("refused-tools")
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert "tools" not in second
    assert "You can call these functions:" in second["messages"][0]["content"]

    # From now on this model goes straight to prompted mode; the switch was logged once.
    with caplog.at_level(logging.WARNING):
        outcome, _ = await turn(provider, "refused-again [[reject_tools]] [[reply:fine]]",
                                [WEATHER])
    assert outcome.text == "fine"
    [sent] = fake_llm.requests_containing("refused-again")
    assert "tools" not in sent
    [warning] = refusal_warnings(caplog)
    assert "'m'" in warning and "prompted mode" in warning and "tool-call-parser" in warning

    # Per model: another model on the same server still gets native tools.
    request = ChatRequest("other", [ChatMessage("user", "other-model [[reply:hi]]")],
                          tools=[WEATHER])
    await provider.complete(request, ignore)
    assert fake_llm.requests_containing("other-model")[-1]["tools"]


async def test_configured_capabilities_are_not_second_guessed(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    provider = OpenAICompatibleProvider(llm_http, fake_llm.base_url, "k", Capabilities())
    with pytest.raises(ProviderError) as caught:
        await turn(provider, "configured-refusal [[reject_tools]]", [WEATHER])
    assert caught.value.code == "invalid_prompt"
    assert len(fake_llm.requests_containing("configured-refusal")) == 1


async def test_errors_about_other_things_do_not_switch_modes(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    provider = OpenAICompatibleProvider(llm_http, fake_llm.base_url, "k", detect=True)
    with caplog.at_level(logging.WARNING), pytest.raises(ProviderError):
        await turn(provider, "other-400 [[fail:400]]", [WEATHER])
    with pytest.raises(ProviderError):  # no tools in the request: nothing to fall back from
        await turn(provider, "no-tools-refusal [[reject_tools]] [[fail:400]]")
    assert len(fake_llm.requests_containing("other-400")) == 1
    assert refusal_warnings(caplog) == []
    outcome, _ = await turn(provider, '[[call:get_weather {"city": "Rome"}]]', [WEATHER])
    assert outcome.tool_calls[0].name == "get_weather"  # still native


def test_only_entries_without_capabilities_are_detected() -> None:
    entries = load_entries("", json.dumps({
        "bare": {"base_url": "http://a/v1"},
        "defaults": {"base_url": "http://a/v1", "capabilities": {}},
        "set": {"base_url": "http://a/v1", "capabilities": {"native_tools": False}}}))
    table = ModelTable(entries, default_url="http://d/v1", default_key=None,
                       anthropic_url="https://anthropic", anthropic_key=None, env={})
    assert [table.resolve(m).detect for m in ("bare", "defaults", "set", "unlisted")] == [
        True, False, False, True]
    router = ProviderRouter(httpx.AsyncClient(), table)
    bare, unset = router._build(table.resolve("bare")), router._build(table.resolve("set"))
    assert isinstance(bare, OpenAICompatibleProvider) and isinstance(unset, OpenAICompatibleProvider)
    assert bare._detect is True
    assert unset._detect is False


# --- llama.cpp's /props ------------------------------------------------------------------------

def _sse(content: str) -> httpx.Response:
    chunks = [{"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def llama_cpp(props: dict[str, Any] | None, answer: str,
              seen: list[httpx.Request]) -> httpx.MockTransport:
    """A llama.cpp-shaped server: /props (404 when None) and a streamed chat answer."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/props":
            return httpx.Response(404) if props is None else httpx.Response(200, json=props)
        return _sse(answer)

    return httpx.MockTransport(handle)


def props(supports_tools: bool, vision: bool = False) -> dict[str, Any]:
    return {"chat_template": "...", "modalities": {"vision": vision, "audio": False},
            "chat_template_caps": {"supports_tools": supports_tools,
                                   "supports_tool_calls": supports_tools,
                                   "supports_system_role": True}}


async def test_llama_cpp_props_tell_what_the_template_can_do() -> None:
    async def probe(answer: dict[str, Any] | None, url: str = "http://h:1/v1") -> Any:
        async with httpx.AsyncClient(transport=llama_cpp(answer, "", [])) as http:
            return await probe_llama_cpp(http, url, {})

    assert await probe(props(False)) == Capabilities(
        native_tools=False, json_schema=True, vision=False, tool_role=False,
        tool_choice_object=False)
    assert await probe(props(True, vision=True)) == Capabilities(
        native_tools=True, json_schema=True, vision=True, tool_role=True,
        tool_choice_object=False)
    assert await probe(None) is None  # vLLM, Ollama, OpenAI...: no /props
    assert await probe({"something": "else"}) is None
    assert server_root("http://h:8080/v1/") == "http://h:8080"
    assert server_root("http://h:8080/api") == "http://h:8080/api"


async def test_llama_cpp_without_template_tools_gets_constrained_mode(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[httpx.Request] = []
    answer = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
    async with httpx.AsyncClient(transport=llama_cpp(props(False), answer, seen)) as http:
        provider = OpenAICompatibleProvider(http, "http://llama:8080/v1", None, detect=True)
        with caplog.at_level(logging.WARNING):
            for _ in range(2):
                outcome, _ = await turn(provider, "weather in Paris?", [WEATHER])
                assert [(c.name, c.arguments) for c in outcome.tool_calls] == [
                    ("get_weather", '{"city": "Paris"}')]
    assert [r.url.path for r in seen] == ["/props", "/v1/chat/completions",
                                          "/v1/chat/completions"]  # asked once
    body = json.loads(seen[1].content)
    assert "tools" not in body and body["response_format"]["type"] == "json_schema"
    [warning] = [r.getMessage() for r in caplog.records if "llama.cpp" in r.getMessage()]
    assert "cannot take tools, so constrained mode" in warning


async def test_configured_providers_never_probe() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=llama_cpp(props(False), "hi", seen)) as http:
        provider = OpenAICompatibleProvider(http, "http://llama:8080/v1", None, Capabilities())
        await turn(provider, "hello", [WEATHER])
    assert [r.url.path for r in seen] == ["/v1/chat/completions"]
    assert "tools" in json.loads(seen[0].content)


# --- The repeated-call guard of prompted / constrained mode -----------------------------------

CONSTRAINED = Capabilities(native_tools=False, json_schema=True)


def answered(marker: str, result: str, arguments: str = '{"city":"Paris"}') -> list[ChatMessage]:
    return [ChatMessage("system", "You are a weather bot."),
            ChatMessage("user", f"{marker}: weather in Paris?"),
            ChatMessage("assistant", "", tool_calls=[ToolCall("call_a", "get_weather", arguments)]),
            ChatMessage("tool", result, tool_call_id="call_a")]


async def test_a_call_repeating_an_answered_one_is_turned_into_an_answer(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    provider = OpenAICompatibleProvider(llm_http, fake_llm.base_url, "k", CONSTRAINED)
    again = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
    messages = answered("loop-guard", f"18C [[reply_per_attempt:{again}|It is 18C in Paris.]]")
    outcome, deltas = await turn(provider, messages, [WEATHER])
    assert (outcome.text, outcome.tool_calls, outcome.finish_reason) == (
        "It is 18C in Paris.", [], "stop")
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)  # the refused call never showed
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "It is 18C in Paris."
    first, second = fake_llm.requests_containing("loop-guard")
    assert "response_format" in first
    # Asked again with nothing to call, past calls told as prose rather than JSON to copy.
    assert "response_format" not in second and "tools" not in second
    assert "You can call these functions" not in second["messages"][0]["content"]
    assert second["messages"][2] == {
        "role": "assistant", "content": 'I called get_weather with {"city":"Paris"}.'}
    assert second["messages"][3]["content"].startswith(
        'Result of get_weather({"city":"Paris"}):')
    assert outcome.usage.completion_tokens > 1  # both attempts are counted


@pytest.mark.parametrize(("marker", "choice", "city"), [
    ("new-arguments", None, "Rome"),  # a different call is a new question
    ("forced-repeat", "required", "Paris"),  # the caller asked for a call
])
async def test_new_or_forced_calls_are_taken(llm_http: httpx.AsyncClient, fake_llm: FakeLLM,
                                             marker: str, choice: str | None, city: str) -> None:
    provider = OpenAICompatibleProvider(llm_http, fake_llm.base_url, "k", CONSTRAINED)
    call = json.dumps({"tool_calls": [{"name": "get_weather", "arguments": {"city": city}}]})
    outcome, _ = await turn(provider, answered(marker, f"18C [[reply:{call}]]"), [WEATHER],
                            tool_choice=choice)
    assert [json.loads(c.arguments) for c in outcome.tool_calls] == [{"city": city}]
    assert len(fake_llm.requests_containing(marker)) == 1


def test_repeats_are_recognised_by_name_and_arguments() -> None:
    history = answered("x", "18C", '{"city": "Paris", "unit": "c"}')
    same = ToolCall("call_b", "get_weather", '{"unit":"c","city":"Paris"}')
    other = ToolCall("call_c", "get_weather", '{"city": "Rome"}')
    assert repeats_answered_calls([same], history)
    assert not repeats_answered_calls([same, other], history)
    assert not repeats_answered_calls([], history)
    assert not repeats_answered_calls([same], history[:3])  # asked, but not answered yet


def test_constrained_schema_allows_one_call_without_parallel_calls() -> None:
    request = ChatRequest("m", [ChatMessage("user", "hi")], tools=[WEATHER, ADD])
    for parallel, expected in ((False, 1), (None, None)):
        adapted, mode = adapt_request(
            ChatRequest(**{**request.__dict__, "parallel_tool_calls": parallel}), CONSTRAINED)
        assert mode == "constrained"
        calls = adapted.response_format["json_schema"]["schema"]["oneOf"][0]  # type: ignore[index]
        assert calls["properties"]["tool_calls"].get("maxItems") == expected
