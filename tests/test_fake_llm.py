"""The fake LLM itself, driven through the official openai SDK and raw httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fake_llm import FakeLLM
from tests.fake_llm_directives import parse_directives

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sdk(fake: FakeLLM) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0)


def ask(sdk: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    return sdk.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": text}], **kwargs)


def test_parse_directives_handles_nested_brackets_and_raw_arguments() -> None:
    d = parse_directives('a [[call:f {"x": [[1]]}]] b [[call:g {oops]] [[reply:hi]] c')
    assert d.calls == [("f", '{"x":[[1]]}'), ("g", "{oops")]
    assert d.options == {"reply": "hi"}
    assert d.text == "a  b   c"


def test_echo_and_models(fake: FakeLLM, sdk: openai.OpenAI) -> None:
    result = ask(sdk, "  hello [[tokendelay:1]] world ")
    assert result.choices[0].message.content == "Echo: hello  world"
    assert result.choices[0].finish_reason == "stop"
    assert result.model == "m1" and result.id.startswith("chatcmpl-")
    assert result.usage is not None and result.usage.completion_tokens == 3
    assert [m.id for m in sdk.models.list()] == ["fake-model"]


def test_reply_with_content_parts(sdk: openai.OpenAI) -> None:
    result = sdk.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "[[reply:first]]"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "[[reply:exact "},
                                     {"type": "text", "text": "text.]]"}]},
    ])
    assert result.choices[0].message.content == "exact text."


def test_tool_calls_non_stream(sdk: openai.OpenAI) -> None:
    text = 'weather? [[call:get_weather {"city": "Paris"}]] [[call:add {"a": 1, "b": 2}]]'
    result = ask(sdk, text, tools=TOOLS)
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.type, c.function.name, c.function.arguments) for c in calls] == [
        ("function", "get_weather", '{"city":"Paris"}'), ("function", "add", '{"a":1,"b":2}')]
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id


def test_tool_calls_streamed_assemble_to_the_same(sdk: openai.OpenAI) -> None:
    text = '[[call:get_weather {"city": "Paris, France", "unit": "celsius"}]] [[call:add {}]]'
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in ask(sdk, text, tools=TOOLS, stream=True):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    assert not slot["id"], "id must only come in the first chunk of a call"
                    slot["id"] = tc.id
                    slot["name"] = tc.function.name if tc.function and tc.function.name else ""
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Paris, France", "unit": "celsius"}), ("add", {})]
    assert all(c["id"].startswith("call_") for c in calls.values())


def test_unknown_tool(sdk: openai.OpenAI) -> None:
    result = ask(sdk, "[[call:nope {}]]", tools=TOOLS)
    assert result.choices[0].message.content == "Unknown tool nope"


def test_fail_twice_then_succeed(sdk: openai.OpenAI) -> None:
    text = "flaky [[fail:500x2]] test_fail_twice_then_succeed"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            ask(sdk, text)
        assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "server_error"
    result = ask(sdk, text)
    assert result.choices[0].message.content == "Echo: flaky  test_fail_twice_then_succeed"


def test_429_has_retry_after(fake: FakeLLM) -> None:
    response = httpx.post(f"{fake.base_url}/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "[[fail:429]]"}]})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}


def test_max_tokens_truncates_with_length(sdk: openai.OpenAI) -> None:
    result = ask(sdk, "[[tokens:10]]", max_tokens=4)
    assert result.choices[0].message.content == "w1 w2 w3 w4"
    assert result.choices[0].finish_reason == "length"
    streamed = ask(sdk, "[[tokens:10]]", max_completion_tokens=3, stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w1 w2 w3"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_tool_result_turn(sdk: openai.OpenAI) -> None:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "add", "arguments": "{}"}}
    history: list[Any] = [
        {"role": "user", "content": "[[call:add {}]] [[fail:500]] [[delay:30]]"},
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "call_2"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "4"}]},
    ]
    result = sdk.chat.completions.create(model="m", messages=history, tools=TOOLS)
    assert result.choices[0].message.content == "Tool results: 3 | 4"
    history[0]["content"] += " [[after_tool:All done.]]"
    result = sdk.chat.completions.create(model="m", messages=history, tools=TOOLS)
    assert result.choices[0].message.content == "All done."


def test_stream_text_and_usage_chunk(sdk: openai.OpenAI) -> None:
    chunks = list(ask(sdk, "[[reply:one two three]]", stream=True,
                      stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:] if c.choices]
    assert pieces[:3] == ["one ", "two ", "three"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 3


def test_raw_stream_ends_with_done(fake: FakeLLM) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == "stop"


def test_truncated_stream_drops_connection(fake: FakeLLM) -> None:
    body = {"model": "m", "stream": True,
            "messages": [{"role": "user", "content": "[[tokens:20]] [[truncate]]"}]}
    lines: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream(
            "POST", f"{fake.base_url}/chat/completions", json=body) as response:
        lines.extend(line for line in response.iter_lines() if line)
    assert lines and "[DONE]" not in "".join(lines) and '"finish_reason": "' not in "".join(lines)


def test_garbage(fake: FakeLLM, sdk: openai.OpenAI) -> None:
    response = httpx.post(f"{fake.base_url}/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "[[garbage]]"}]})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    with pytest.raises(json.JSONDecodeError):
        list(ask(sdk, "[[garbage]]", stream=True))


def test_invalid_body_is_400(fake: FakeLLM) -> None:
    url = f"{fake.base_url}/chat/completions"
    for response in (httpx.post(url, content=b"{nope"), httpx.post(url, json={"model": "m"})):
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_request_log_and_reset(fake: FakeLLM, sdk: openai.OpenAI) -> None:
    ask(sdk, "marker-7f3a [[reply:x]]")
    found = fake.requests_containing("marker-7f3a")
    assert len(found) == 1 and found[0]["model"] == "m1"
    assert found[0] in httpx.get(fake.base_url.removesuffix("/v1") + "/_requests").json()
    fake.reset()
    assert fake.requests == [] and fake.requests_containing("marker-7f3a") == []
