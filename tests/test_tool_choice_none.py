"""`tool_choice: "none"`: the model is offered no tools, in every tool mode, and an answer
that is a function call written as text is repaired, never stored as the answer.

Measured with a real model (issue 24's benchmark): with the tools still sent under
"none", Qwen2.5-Coder wrote its usual call JSON, and the run stored it as its answer.
End to end through the API, on a worker of our own whose MODELS put a model in each mode.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from activities.turn_rules import violation
from api.app import create_app
from core.llm.models import Capabilities
from core.llm.quirks import adapt_request
from core.llm.types import ChatMessage, ChatRequest, ToolCall, TurnOutcome, Usage
from core.settings import Settings
from tests.fake_llm import FakeLLM
from tests.llm_helpers import WEATHER
from tests.sdk_client import sdk_over
from worker import run_worker

TOOL: Any = {"type": "function", "function": {"name": "getCurrentWeather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}
# One model per tool mode (docs/providers.md); fake-model has no entry: native.
MODES = {"native": "fake-model", "prompted": "prompted-model", "constrained": "constrained-model"}
CALL = {"name": "getCurrentWeather", "arguments": {"location": "Paris"}}
# How models write a call into their text: bare JSON, the prompted mode's block, tags.
CALL_TEXTS = {
    "bare": json.dumps(CALL),
    "prompted_block": "```json\n" + json.dumps({"tool_calls": [CALL]}) + "\n```",
    "tagged": f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>",
}
REJECTED = "Your previous answer was rejected: tool_choice is 'none'"


@pytest.fixture(scope="module")
async def sdk(settings: Settings) -> AsyncIterator[openai.AsyncOpenAI]:
    configured = settings.model_copy(update={
        "temporal_task_queue": f"tool-choice-none-{uuid.uuid4().hex[:10]}",
        "models": json.dumps({
            "prompted-model": {"capabilities": {"native_tools": False}},
            "constrained-model": {"capabilities": {"native_tools": False,
                                                   "json_schema": True}}})})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(configured, stop))
    app = create_app(configured)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            yield sdk_over(http)
    finally:
        stop.set()
        await worker


async def _run(sdk: openai.AsyncOpenAI, fake_llm: FakeLLM, model: str,
               text: str) -> tuple[Any, str, list[dict[str, Any]]]:
    """A run with tool_choice "none": the run, its stored answer, what the model received."""
    marker = uuid.uuid4().hex
    assistant = await sdk.beta.assistants.create(model=model, instructions="Be brief.",
                                                 tools=[TOOL])
    thread = await sdk.beta.threads.create(
        messages=[{"role": "user", "content": f"{text} <{marker}>"}])
    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice="none",
        poll_interval_ms=50)
    latest = (await sdk.beta.threads.messages.list(thread_id=thread.id)).data[0]
    answer = ""
    if latest.role == "assistant" and latest.content[0].type == "text":
        answer = latest.content[0].text.value
    return run, answer, fake_llm.requests_containing(marker)


def _offers_nothing(request: dict[str, Any]) -> None:
    assert "tools" not in request and "tool_choice" not in request, request
    assert "parallel_tool_calls" not in request and "response_format" not in request
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("shape", sorted(CALL_TEXTS))
@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_call_written_as_text_is_repaired_not_stored(
        sdk: openai.AsyncOpenAI, fake_llm: FakeLLM, mode: str, shape: str) -> None:
    run, answer, requests = await _run(sdk, fake_llm, MODES[mode],
                                       f"[[reply:{CALL_TEXTS[shape]}]]")
    assert run.status == "completed", run.last_error
    first, repair = requests  # one repair attempt, told why
    _offers_nothing(first)
    _offers_nothing(repair)
    assert repair["messages"][-1]["content"].startswith(REJECTED)
    # The fake echoes the repair prompt (the last user message, without directives).
    assert answer.startswith(f"Echo: {REJECTED}")
    assert "getCurrentWeather" not in answer


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_text_answer_is_kept_as_it_came(
        sdk: openai.AsyncOpenAI, fake_llm: FakeLLM, mode: str) -> None:
    # JSON that is no call (no arguments) is an answer like any other.
    for text in ("It is sunny in Paris.", '{"name": "Paris"}'):
        run, answer, requests = await _run(sdk, fake_llm, MODES[mode], f"[[reply:{text}]]")
        assert run.status == "completed" and answer == text
        [only] = requests
        _offers_nothing(only)


# --- the pieces: what is sent, and what is rejected --------------------------------------

def _request(choice: Any) -> ChatRequest:
    """A turn after a function round trip, with tools and tool_choice `choice`."""
    call = ToolCall("call_a", "get_weather", '{"city": "Paris"}')
    return ChatRequest("m", [ChatMessage("system", "Be brief."), ChatMessage("user", "Weather?"),
                             ChatMessage("assistant", "", tool_calls=[call]),
                             ChatMessage("tool", "18C", tool_call_id="call_a")],
                       tools=[WEATHER], tool_choice=choice, parallel_tool_calls=False)


@pytest.mark.parametrize("caps", [Capabilities(), Capabilities(native_tools=False),
                                  Capabilities(native_tools=False, json_schema=True)],
                         ids=["native", "prompted", "constrained"])
def test_none_sends_no_tools_and_tells_past_calls_as_prose(caps: Capabilities) -> None:
    adapted, mode = adapt_request(_request("none"), caps)
    assert mode == "native"  # a plain text turn: nothing parsed out of the answer
    assert (adapted.tools, adapted.tool_choice, adapted.parallel_tool_calls) == ([], None, None)
    assert adapted.response_format is None
    assert [m.role for m in adapted.messages] == ["system", "user", "assistant", "user"]
    assert adapted.messages[0].content == "Be brief."
    assert adapted.messages[2].content == 'I called get_weather with {"city": "Paris"}.'
    # Any other choice still offers the tools (native: as `tools`).
    assert adapt_request(_request("auto"), Capabilities())[0].tools == [WEATHER]


def _text(text: str) -> TurnOutcome:
    return TurnOutcome(text, [], "stop", Usage())


FUNCTIONS = [TOOL]
JSON_FORMAT = {"type": "json_object"}


@pytest.mark.parametrize(("choice", "text", "response_format", "rejected"), [
    ("none", json.dumps(CALL), None, True),
    ("none", CALL_TEXTS["prompted_block"], None, True),
    ("none", CALL_TEXTS["tagged"], None, True),
    # Under "none", a call to any function: the model copies its call format.
    ("none", json.dumps({"name": "send_mail", "parameters": {"to": "x"}}), None, True),
    ("none", '{"name": "Paris"}', None, False),  # no arguments: not a call
    ("none", "Call getCurrentWeather with Paris.", None, False),
    ("none", json.dumps(CALL), JSON_FORMAT, False),  # JSON asked for: any shape may be right
    # Other choices: a call to one of the run's functions left in the text.
    (None, json.dumps(CALL), None, True),
    ("auto", CALL_TEXTS["prompted_block"], None, True),
    ("auto", json.dumps({"name": "send_mail", "arguments": {}}), None, False),
])
def test_which_text_answers_are_calls(choice: Any, text: str,
                                      response_format: Any, rejected: bool) -> None:
    problem = violation(FUNCTIONS, choice, response_format, _text(text))
    assert (problem is not None) == rejected, problem
    if rejected and choice == "none":
        assert problem is not None and problem.startswith("tool_choice is 'none'")
