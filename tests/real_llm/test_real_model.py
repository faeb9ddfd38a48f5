"""Function calling through our API with a real open model (SmolLM2-135M on llama.cpp).

The README's weather bot, end to end with the official SDK: the run stops at
requires_action with arguments that are valid JSON matching the function's schema, and
after the tool outputs it completes with an assistant message.

SmolLM2's chat template has no tools: llama.cpp drops `tools` silently (its /props says
`supports_tools: false`), so native function calling never calls anything. Constrained mode
(capabilities `native_tools: false, json_schema: true`) is what works: llama.cpp's grammar
enforces our `{"tool_calls": [...]} | {"message": ...}` schema, so every call parses and
matches the function's parameters, even from a 135M model. Two ways to get there:

- configured: a MODELS entry with those capabilities, and tool_choice "required";
- detected: no entry at all (MODEL_URL points at llama.cpp), the capabilities come from
  llama.cpp's /props at first use, and tool_choice is left to the model ("auto").

Each variant runs on a task queue of its own, served by a worker in this process that has
that variant's model settings (like tests/test_durability.py, without the processes).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai.types.beta.threads import Run

from api.app import create_app
from core.settings import Settings
from tests.real_llm.conftest import MODEL
from tests.sdk_client import sdk_over
from tests.test_runs import WEATHER_TOOL
from worker import run_worker

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(600)]

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
# Generous: ~20-40 tokens/s on 2 shared cores; a run takes two or three model calls.
RUN_SECONDS = 240
CONSTRAINED = {"native_tools": False, "json_schema": True, "vision": False,
               "tool_choice_object": False}


@dataclass
class Variant:
    sdk: openai.AsyncOpenAI
    tool_choice: Any


def _model_settings(variant: str, base_url: str) -> dict[str, Any]:
    if variant == "configured":
        entry = {"base_url": base_url, "context_window": 4096, "capabilities": CONSTRAINED}
        return {"models": json.dumps({MODEL: entry})}
    return {"models": "", "models_config": "", "model_url": base_url}


@pytest.fixture(params=["configured", "detected"])
async def variant(request: pytest.FixtureRequest, settings: Settings,
                  llama_server: str) -> AsyncIterator[Variant]:
    queue = f"real-model-{request.param}-{uuid.uuid4().hex[:8]}"
    mine = settings.model_copy(update={
        "temporal_task_queue": queue, "llm_timeout_seconds": 300.0,
        **_model_settings(request.param, llama_server)})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(mine, stop))
    app = create_app(mine)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            yield Variant(sdk_over(http, api_key="k"),
                          "required" if request.param == "configured" else "auto")
    finally:
        stop.set()
        await worker


async def _poll(sdk: openai.AsyncOpenAI, run: Run, until: set[str]) -> Run:
    deadline = time.monotonic() + RUN_SECONDS
    while run.status not in until:
        assert time.monotonic() < deadline, f"run still {run.status} after {RUN_SECONDS}s"
        await asyncio.sleep(0.25)
        run = await sdk.beta.threads.runs.retrieve(run_id=run.id, thread_id=run.thread_id)
    return run


async def test_weather_bot_calls_the_function_and_answers(variant: Variant) -> None:
    sdk = variant.sdk
    assistant = await sdk.beta.assistants.create(
        model=MODEL, tools=[WEATHER_TOOL],  # type: ignore[list-item]
        instructions="You are a weather bot. Use the provided functions to answer questions.")
    thread = await sdk.beta.threads.create(
        messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    run = await sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                             temperature=0, tool_choice=variant.tool_choice)

    run = await _poll(sdk, run, {"requires_action"} | TERMINAL)
    assert run.status == "requires_action", (run.status, run.last_error, run.incomplete_details)
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert calls
    schema = WEATHER_TOOL["function"]["parameters"]  # type: ignore[index]
    for call in calls:
        assert call.function.name == "getCurrentWeather"
        arguments = json.loads(call.function.arguments)  # valid JSON ...
        jsonschema.validate(arguments, schema)  # ... matching the declared parameters
        assert "paris" in arguments["location"].lower(), arguments

    run = await sdk.beta.threads.runs.submit_tool_outputs(
        run_id=run.id, thread_id=thread.id,
        tool_outputs=[{"tool_call_id": c.id, "output": "18C and cloudy"} for c in calls])
    run = await _poll(sdk, run, TERMINAL)
    assert run.status == "completed", (run.status, run.last_error, run.incomplete_details)

    messages = await sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [m.role for m in messages.data] == ["user", "assistant"]
    answer = messages.data[1].content[0].text.value  # type: ignore[union-attr]
    print(f"calls: {[c.function.arguments for c in calls]}\nanswer: {answer!r}")
    assert answer.strip(), "the assistant message is empty"
    # Whatever the model says, it is prose, not a call written as JSON.
    assert "getCurrentWeather" not in answer, answer
    steps = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id,
                                                   order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "message_creation"]
    assert run.usage is not None and run.usage.completion_tokens > 0
