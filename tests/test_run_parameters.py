"""Every run parameter is honoured: what the model received, and what the SDK reads back."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from openai.types.beta.threads import Run

from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.usefixtures("worker")

LOOKUP: dict[str, Any] = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
    "additionalProperties": False}}}
OTHER = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}


async def _run(client: openai.AsyncOpenAI, fake_llm: FakeLLM, text: str,
               tools: list[dict[str, Any]] | None = None, history: list[str] | None = None,
               **params: Any) -> tuple[Run, list[dict[str, Any]]]:
    """Run `text` (tagged unique) to a stop; return the run and what the model received."""
    marker = uuid.uuid4().hex
    assistant = await client.beta.assistants.create(
        model="fake-model", instructions="Base instructions.", tools=tools or [])  # type: ignore[arg-type]
    messages = [{"role": "user", "content": h} for h in history or []]
    messages.append({"role": "user", "content": f"{text} <{marker}>"})
    thread = await client.beta.threads.create(messages=messages)  # type: ignore[arg-type]
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50, **params)
    return run, fake_llm.requests_containing(marker)


async def _reply(client: openai.AsyncOpenAI, run: Run) -> Any:
    messages = await client.beta.threads.messages.list(thread_id=run.thread_id)
    return messages.data[0]


async def test_tool_choice_values_reach_the_model(client: openai.AsyncOpenAI,
                                                  fake_llm: FakeLLM) -> None:
    for choice, sent in [("none", None), ("required", "required"),
                         ({"type": "function", "function": {"name": "lookup"}},
                          {"type": "function", "function": {"name": "lookup"}})]:
        run, requests = await _run(client, fake_llm, '[[call:lookup {"q": "x"}]]', [LOOKUP],
                                   tool_choice=choice)
        # "none": no tools at all (tests/test_tool_choice_none.py).
        assert requests[0].get("tool_choice") == sent
        assert run.tool_choice == choice or run.tool_choice.model_dump() == choice  # type: ignore[union-attr]
    run, requests = await _run(client, fake_llm, "[[reply:plain]]", [LOOKUP])
    assert "tool_choice" not in requests[0]  # auto: the provider default
    assert run.tool_choice == "auto"


async def test_required_tool_choice_with_a_text_answer_fails_clearly(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    run, requests = await _run(client, fake_llm, "[[reply:just text]]", [LOOKUP],
                               tool_choice="required")
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "server_error"
    assert "tool_choice is 'required'" in run.last_error.message
    assert len(requests) == 2  # one repair attempt, told why
    assert "was rejected: tool_choice is 'required'" in requests[1]["messages"][-1]["content"]


async def test_named_function_choice_rejects_another_function(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    run, _ = await _run(client, fake_llm, "[[call:other {}]]", [LOOKUP, OTHER],
                        tool_choice={"type": "function", "function": {"name": "lookup"}})
    assert run.status == "failed"
    assert "requires 'lookup', but the model called 'other'" in run.last_error.message  # type: ignore[union-attr]
    ok, _ = await _run(client, fake_llm, '[[call:lookup {"q": "y"}]]', [LOOKUP, OTHER],
                       tool_choice={"type": "function", "function": {"name": "lookup"}})
    assert ok.status == "requires_action"


async def test_tool_choice_none_keeps_a_disobedient_model_from_calling(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    # Offered no tools, the model writes its call as text (as a real one did).
    run, requests = await _run(client, fake_llm, '[[reply:{"name": "lookup", "arguments": '
                               '{"q": "x"}}]]', [LOOKUP], tool_choice="none")
    # Repaired: the second answer (text) is what the run keeps.
    assert run.status == "completed" and len(requests) == 2
    assert (await _reply(client, run)).content[0].text.value.startswith("Echo: Your previous")


async def test_parallel_tool_calls(client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    two = '[[call:lookup {"q": "a"}]] [[call:lookup {"q": "b"}]]'
    run, requests = await _run(client, fake_llm, two, [LOOKUP])
    assert "parallel_tool_calls" not in requests[0]  # default true: provider default
    calls = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert len(calls) == 2 and len({c.id for c in calls}) == 2
    single, requests = await _run(client, fake_llm, two, [LOOKUP], parallel_tool_calls=False)
    assert requests[0]["parallel_tool_calls"] is False
    assert len(single.required_action.submit_tool_outputs.tool_calls) == 1  # type: ignore[union-attr]
    assert single.parallel_tool_calls is False


async def test_response_format_json_object(client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    good, requests = await _run(client, fake_llm, '[[reply:{"a": 1}]]',
                                response_format={"type": "json_object"})
    assert requests[0]["response_format"] == {"type": "json_object"}
    assert good.status == "completed" and good.response_format.type == "json_object"  # type: ignore[union-attr]
    bad, requests = await _run(client, fake_llm, "[[reply:not json]]",
                               response_format={"type": "json_object"})
    assert bad.status == "failed" and len(requests) == 2
    assert "not valid JSON" in bad.last_error.message  # type: ignore[union-attr]


async def test_response_format_json_schema(client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "count", "schema": schema}}
    good, requests = await _run(client, fake_llm, '[[reply:{"n": 3}]]', response_format=fmt)
    assert good.status == "completed"
    assert requests[0]["response_format"]["json_schema"]["schema"] == schema
    bad, _ = await _run(client, fake_llm, '[[reply:{"n": "three"}]]', response_format=fmt)
    assert bad.status == "failed"
    assert "does not match the response_format schema" in bad.last_error.message  # type: ignore[union-attr]


async def test_max_completion_tokens_caps_and_ends_incomplete(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    run, requests = await _run(client, fake_llm, "[[tokens:400]]", max_completion_tokens=256)
    assert requests[0]["max_tokens"] == 256
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    message = await _reply(client, run)
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"
    assert message.incomplete_at is not None
    assert run.usage is not None and run.usage.completion_tokens == 256


async def test_max_prompt_tokens_trims_the_oldest_messages(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    history = [f"old message {i} " + "filler " * 60 for i in range(10)]
    run, requests = await _run(client, fake_llm, "[[reply:ok]]", history=history,
                               max_prompt_tokens=300)
    assert run.status == "completed"
    sent = [m["content"] for m in requests[0]["messages"] if m["role"] == "user"]
    assert sent[-1].startswith("[[reply:ok]]")
    assert 1 <= len(sent) < 11 and not any("old message 0 " in s for s in sent)
    assert run.max_prompt_tokens == 300


async def test_max_prompt_tokens_too_small_for_the_last_message_is_incomplete(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    run, requests = await _run(client, fake_llm, "[[reply:never]] " + "word " * 400,
                               max_prompt_tokens=256)
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_prompt_tokens"  # type: ignore[union-attr]
    assert requests == []  # the model was never called


async def test_truncation_strategy_last_messages(client: openai.AsyncOpenAI,
                                                 fake_llm: FakeLLM) -> None:
    run, requests = await _run(client, fake_llm, "[[reply:ok]]", history=["one", "two", "three"],
                               truncation_strategy={"type": "last_messages", "last_messages": 2})
    roles = [(m["role"], m["content"][:5]) for m in requests[0]["messages"]]
    assert roles == [("system", "Base "), ("user", "three"), ("user", "[[rep")]
    assert run.truncation_strategy is not None
    assert run.truncation_strategy.type == "last_messages"
    assert run.truncation_strategy.last_messages == 2


async def test_overrides_reach_the_model(client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    run, requests = await _run(
        client, fake_llm, "[[reply:ok]]", model="other-model", instructions="Override.",
        additional_instructions="Also this.", temperature=0.3, top_p=0.5,
        additional_messages=[{"role": "user", "content": "an additional message"}],
        metadata={"k": "v"})
    sent = requests[0]
    assert sent["model"] == "other-model"
    assert sent["messages"][0] == {"role": "system", "content": "Override.\nAlso this."}
    assert sent["messages"][-1]["content"] == "an additional message"
    assert (sent["temperature"], sent["top_p"]) == (0.3, 0.5)
    assert (run.model, run.temperature, run.top_p, run.metadata) == (
        "other-model", 0.3, 0.5, {"k": "v"})
    updated = await client.beta.threads.runs.update(run_id=run.id, thread_id=run.thread_id,
                                                     metadata={"k": "w"})
    assert updated.metadata == {"k": "w"}


async def test_strict_function_arguments_are_validated_and_repaired(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    strict = {"type": "function", "function": {**LOOKUP["function"], "strict": True}}
    run, requests = await _run(client, fake_llm, '[[call:lookup {"q": 5}]]', [strict])
    assert len(requests) == 2
    assert "do not match its strict schema" in requests[1]["messages"][-1]["content"]
    # The repaired answer (text) is kept; no invalid call ever reached requires_action.
    assert run.status == "completed"
    valid, _ = await _run(client, fake_llm, '[[call:lookup {"q": "five"}]]', [strict])
    assert valid.status == "requires_action"


async def test_usage_is_filled_on_steps_and_run(client: openai.AsyncOpenAI,
                                                fake_llm: FakeLLM) -> None:
    run, _ = await _run(client, fake_llm, "[[reply:a b c]]")
    assert run.usage is not None and run.usage.completion_tokens == 3
    assert run.usage.total_tokens == run.usage.prompt_tokens + 3
    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id)
    assert steps.data[0].usage is not None and steps.data[0].usage.completion_tokens == 3


async def test_auto_truncation_fits_the_models_context_window(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    """`small-window-model` has a 1,600-token window (models config in tests/conftest.py):
    with 1,024 kept for the answer, the oldest messages must go."""
    history = [f"old message {i} " + "filler " * 60 for i in range(10)]
    run, requests = await _run(client, fake_llm, "[[reply:ok]]", history=history,
                               model="small-window-model")
    assert run.status == "completed"
    sent = [m["content"] for m in requests[0]["messages"] if m["role"] == "user"]
    assert sent[-1].startswith("[[reply:ok]]")
    assert 1 <= len(sent) < 11 and not any("old message 0 " in s for s in sent)
    # The same thread on a model with the default (large) window keeps everything.
    _, wide_requests = await _run(client, fake_llm, "[[reply:ok]]", history=history)
    assert len([m for m in wide_requests[0]["messages"] if m["role"] == "user"]) == 11
