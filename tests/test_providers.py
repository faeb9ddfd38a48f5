"""Model providers: open-model tool-calling quirks, Anthropic natively, routing by model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from core.llm.errors import ProviderError
from core.llm.models import Capabilities, ModelTable, load_entries
from core.llm.openai_compatible import OpenAICompatibleProvider
from core.llm.quirks import parse_content_calls
from core.llm.router import ProviderRouter
from core.llm.types import ChatMessage, ChatRequest, TextDelta, ToolCallDelta
from tests.fake_anthropic import FakeAnthropic
from tests.fake_llm import FakeLLM
from tests.llm_helpers import ADD, WEATHER, history, ignore, turn
from tests.test_runs import WEATHER_TOOL


@pytest.fixture
async def llm_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def openai_provider(llm_http: httpx.AsyncClient, fake: FakeLLM, **caps: bool) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(llm_http, fake.base_url, "k", Capabilities(**caps))


# --- OpenAI-compatible servers ---------------------------------------------------------------

async def test_json_block_in_content_becomes_a_tool_call(llm_http: httpx.AsyncClient,
                                                         fake_llm: FakeLLM) -> None:
    outcome, deltas = await turn(openai_provider(llm_http, fake_llm),
                                 '[[content_call:get_weather {"city": "Oslo"}]]', [WEATHER])
    assert outcome.finish_reason == "tool_calls" and outcome.text == ""
    assert [(c.name, json.loads(c.arguments)) for c in outcome.tool_calls] == [
        ("get_weather", {"city": "Oslo"})]
    assert not any(isinstance(d, TextDelta) for d in deltas), "the JSON must not stream as text"
    assert [d.name for d in deltas if isinstance(d, ToolCallDelta)] == ["get_weather"]


async def test_json_block_for_an_undeclared_function_stays_text(llm_http: httpx.AsyncClient,
                                                                fake_llm: FakeLLM) -> None:
    outcome, deltas = await turn(openai_provider(llm_http, fake_llm),
                                 '[[content_call:rm_rf {"path": "/"}]]', [WEATHER])
    assert outcome.tool_calls == [] and outcome.text.startswith("```json")
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == outcome.text


async def test_plain_text_still_streams_token_by_token_with_tools(llm_http: httpx.AsyncClient,
                                                                   fake_llm: FakeLLM) -> None:
    outcome, deltas = await turn(openai_provider(llm_http, fake_llm), "[[reply:one two three]]",
                                 [WEATHER])
    assert outcome.text == "one two three"
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["one ", "two ", "three"]


async def test_ids_and_names_repeated_in_every_chunk_are_not_concatenated(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    text = '[[repeat_ids]] [[call:get_weather {"city": "Paris, France"}]] [[call:add {}]]'
    outcome, deltas = await turn(openai_provider(llm_http, fake_llm), text, [WEATHER, ADD])
    sent = fake_llm.requests_containing("[[repeat_ids]]")[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    first, second = outcome.tool_calls
    assert (first.name, json.loads(first.arguments)) == ("get_weather", {"city": "Paris, France"})
    assert (second.name, second.arguments) == ("add", "{}")
    assert first.id.startswith("call_") and first.id.count("call_") == 1
    announced = [d for d in deltas if isinstance(d, ToolCallDelta) and d.id]
    assert [d.index for d in announced] == [0, 1]  # id and name once per call


async def test_templates_without_tool_role_get_calls_and_results_as_text(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    provider = openai_provider(llm_http, fake_llm, tool_role=False)
    await turn(provider, history("no-tool-role"), [WEATHER, ADD])
    sent = fake_llm.requests_containing("no-tool-role")[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert "tool_calls" not in sent[2] and '"name": "get_weather"' in sent[2]["content"]
    assert sent[3]["content"] == ('Result of get_weather({"city":"Paris"}):\n18C\n\n'
                                  "Result of add({}):\n3")


async def test_string_only_tool_choice_is_degraded_to_required(llm_http: httpx.AsyncClient,
                                                               fake_llm: FakeLLM) -> None:
    text = '[[string_tool_choice]] [[call:add {"a": 1}]]'
    choice = {"type": "function", "function": {"name": "add"}}
    with pytest.raises(ProviderError) as caught:
        await turn(openai_provider(llm_http, fake_llm), text, [WEATHER, ADD], tool_choice=choice)
    assert caught.value.code == "invalid_prompt"
    outcome, _ = await turn(openai_provider(llm_http, fake_llm, tool_choice_object=False), text,
                            [WEATHER, ADD], tool_choice=choice)
    assert outcome.tool_calls[0].name == "add"
    sent = fake_llm.requests_containing("[[string_tool_choice]]")[-1]
    assert sent["tool_choice"] == "required"
    assert [t["function"]["name"] for t in sent["tools"]] == ["add"]


async def test_constrained_mode_sends_a_schema_and_converts_the_answer(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    provider = openai_provider(llm_http, fake_llm, native_tools=False, json_schema=True)
    answer = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}'
    outcome, deltas = await turn(provider, f"constrained-call [[reply:{answer}]]", [WEATHER])
    assert [(c.name, json.loads(c.arguments)) for c in outcome.tool_calls] == [
        ("get_weather", {"city": "Rome"})]
    assert not any(isinstance(d, TextDelta) for d in deltas)
    sent = fake_llm.requests_containing("constrained-call")[-1]
    assert "tools" not in sent and "tool_choice" not in sent
    schema = sent["response_format"]["json_schema"]["schema"]
    calls_branch, message_branch = schema["oneOf"]
    item = calls_branch["properties"]["tool_calls"]["items"]["anyOf"][0]
    assert item["properties"]["name"]["enum"] == ["get_weather"]
    assert message_branch["required"] == ["message"]
    assert "get_weather" in sent["messages"][0]["content"]

    outcome, deltas = await turn(provider, '[[reply:{"message": "Hello there."}]]', [WEATHER])
    assert (outcome.text, outcome.tool_calls, outcome.finish_reason) == ("Hello there.", [], "stop")
    assert deltas == [TextDelta("Hello there.")]


async def test_prompted_mode_describes_tools_and_parses_the_content(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    provider = openai_provider(llm_http, fake_llm, native_tools=False)
    messages = history("prompted-mode")[:2]
    messages[1].content = 'prompted-mode [[content_call:add {"a": 2}]]'
    outcome, _ = await turn(provider, messages, [WEATHER, ADD], tool_choice="required")
    assert [(c.name, c.arguments) for c in outcome.tool_calls] == [("add", '{"a": 2}')]
    sent = fake_llm.requests_containing("prompted-mode")[-1]
    assert "tools" not in sent and sent["messages"][0]["role"] == "system"
    assert sent["messages"][0]["content"].startswith("Be brief.\n\nYou can call these functions:")
    assert "You must call a function now." in sent["messages"][0]["content"]


async def test_models_without_vision_get_a_note_instead_of_images(
        llm_http: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "no-vision"},
             {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    await turn(openai_provider(llm_http, fake_llm, vision=False), [ChatMessage("user", parts)])
    sent = fake_llm.requests_containing("no-vision")[-1]["messages"][0]
    assert sent["content"] == "no-vision\n[image omitted: this model cannot see images]"


@pytest.mark.parametrize("text", [
    '```json\n{"name": "add", "arguments": {"a": 1}}\n```',
    '{"name": "add", "arguments": "{\\"a\\": 1}"}',
    '{"tool_calls": [{"function": {"name": "add", "arguments": {"a": 1}}}]}',
    '[{"name": "add", "parameters": {"a": 1}}]',
    '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>',
])
def test_tool_call_shapes_found_in_content(text: str) -> None:
    calls = parse_content_calls(text, {"add"})
    assert calls is not None and [(c.name, c.arguments) for c in calls] == [("add", '{"a": 1}')]


@pytest.mark.parametrize("text", [
    '{"name": "sub", "arguments": {}}',  # not declared
    '{"name": "add", "arguments": [1]}',  # arguments must be an object
    '{"name": "add", "arguments": "{oops"}',
    '```json\n{"name": "add", "arguments": {}}\n```\nThat should do it.',  # prose after
    '{"answer": 42}', "[]", "not json",
])
def test_content_that_is_not_only_tool_calls_stays_text(text: str) -> None:
    assert parse_content_calls(text, {"add"}) is None


# --- Routing -----------------------------------------------------------------------------------

def test_models_config_files_inline_globs_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(
        '[models."llama-*"]\nbase_url = "http://gpu/v1"\napi_key_env = "GPU_KEY"\n'
        'context_window = 8192\ncapabilities = { native_tools = false, json_schema = true }\n')
    inline = json.dumps({"llama-3-special": {"base_url": "http://other/v1"}})
    table = ModelTable(load_entries(str(tmp_path / "models.toml"), inline),
                       default_url="http://default/v1", default_key="dk",
                       anthropic_url="https://anthropic", anthropic_key="ak",
                       env={"GPU_KEY": "gpu-secret"})
    llama = table.resolve("llama-3-8b")
    assert (llama.base_url, llama.api_key, llama.context_window) == ("http://gpu/v1", "gpu-secret", 8192)
    assert llama.capabilities == Capabilities(native_tools=False, json_schema=True)
    assert "gpu-secret" not in repr(llama)
    assert table.resolve("llama-3-special").base_url == "http://other/v1"
    router = ProviderRouter(httpx.AsyncClient(), table, default_context_window=4096)
    assert (router.context_window("llama-3-8b"), router.context_window("gpt-4o")) == (8192, 4096)
    claude, gpt = table.resolve("claude-sonnet-4-5"), table.resolve("gpt-4o")
    assert (claude.provider, claude.base_url, claude.api_key) == ("anthropic", "https://anthropic", "ak")
    assert (gpt.provider, gpt.base_url, gpt.api_key) == ("openai", "http://default/v1", "dk")
    no_anthropic = ModelTable([], default_url="http://d", default_key=None,
                              anthropic_url="https://anthropic", anthropic_key=None, env={})
    assert no_anthropic.resolve("claude-x").provider == "openai"


@pytest.mark.parametrize(("inline", "error"), [
    ('{"m": {"api_key": "sk-123"}}', "api_key_env"),
    ('{"m": {"provider": "gemini"}}', "provider"),
    ('{"m": {"capabilities": {"tools": true}}}', "capabilities"),
    ('{"m": {"context_window": -1}}', "context_window"),
    ("{not json", "MODELS is not valid JSON"),
])
def test_bad_models_config_fails_loudly(inline: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as caught:
        load_entries("", inline)
    assert "sk-123" not in str(caught.value)


async def test_router_dispatches_by_model(llm_http: httpx.AsyncClient, fake_llm: FakeLLM,
                                          fake_anthropic: FakeAnthropic) -> None:
    entries = load_entries("", json.dumps({"local-*": {"base_url": fake_llm.base_url},
                                           "my-claude": {"provider": "anthropic"}}))
    router = ProviderRouter(llm_http, ModelTable(
        entries, default_url="http://127.0.0.1:9/v1", default_key=None,
        anthropic_url=fake_anthropic.base_url, anthropic_key="ak", env={}))
    for model, marker in (("local-7b", "route-openai"), ("my-claude", "route-anthropic")):
        request = ChatRequest(model, [ChatMessage("user", f"{marker} [[reply:ok]]")])
        outcome = await router.complete(request, ignore)
        assert outcome.text == "ok"
    assert fake_llm.requests_containing("route-openai")[-1]["model"] == "local-7b"
    assert fake_anthropic.requests_containing("route-anthropic")[-1]["model"] == "my-claude"


# --- End to end: a claude-* run through the real stack ------------------------------------------

@pytest.mark.usefixtures("worker")
async def test_claude_weather_bot_runs_through_anthropic(
        client: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic) -> None:
    assistant = await client.beta.assistants.create(
        model="claude-sonnet-4-5", instructions="You are a weather bot.", tools=[WEATHER_TOOL])  # type: ignore[list-item]
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": (
        'claude-weather in SF? [[call:getCurrentWeather {"location": "San Francisco, CA"}]]')}])
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "requires_action", run.last_error
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("getCurrentWeather", {"location": "San Francisco, CA"})]

    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "22C and sunny"}])
    assert done.status == "completed", done.last_error
    assert done.usage is not None and done.usage.total_tokens > 0
    messages = await client.beta.threads.messages.list(thread_id=thread.id)
    assert messages.data[0].content[0].text.value == "Tool results: 22C and sunny"  # type: ignore[union-attr]

    second = fake_anthropic.requests_containing("22C and sunny")[-1]
    assert second["model"] == "claude-sonnet-4-5" and second["system"] == "You are a weather bot."
    assert second["tools"][0]["name"] == "getCurrentWeather"
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][1]["content"] == [{
        "type": "tool_use", "id": calls[0].id, "name": "getCurrentWeather",
        "input": {"location": "San Francisco, CA"}}]
    assert second["messages"][2]["content"] == [{
        "type": "tool_result", "tool_use_id": calls[0].id,
        "content": [{"type": "text", "text": "22C and sunny"}]}]
    assert fake_anthropic.headers_for(second) == {"x-api-key": "fake-anthropic-key",
                                                  "anthropic-version": "2023-06-01"}
