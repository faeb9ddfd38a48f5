"""Runs that go wrong: bad submissions, the thread lock, cancellation, LLM faults."""

from __future__ import annotations

import asyncio
import time
import uuid

import openai
import pytest
from openai.types.beta.threads import Run

from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.usefixtures("worker")

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}}


async def _start(client: openai.AsyncOpenAI, text: str) -> Run:
    # A unique tag: the fake LLM keys failure counters on the exact text, and
    # each test runs once per base URL.
    text = f"{text} <{uuid.uuid4().hex[:8]}>"
    assistant = await client.beta.assistants.create(model="fake-model", tools=[TOOL])  # type: ignore[list-item]
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)


def _message(error: openai.APIStatusError) -> str:
    body = error.body
    assert isinstance(body, dict)
    return str(body["message"])


async def _wait(client: openai.AsyncOpenAI, run: Run, *statuses: str, timeout: float = 30) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await client.beta.threads.runs.retrieve(run_id=run.id, thread_id=run.thread_id)
        if run.status in statuses:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run stayed {run.status}, wanted {statuses}")


async def test_submit_with_wrong_missing_or_duplicate_ids_is_a_400(
    client: openai.AsyncOpenAI,
) -> None:
    run = await _start(client, 'two [[call:lookup {"q": "a"}]] [[call:lookup {"q": "b"}]]')
    run = await _wait(client, run, "requires_action")
    assert run.required_action is not None
    first, second = (c.id for c in run.required_action.submit_tool_outputs.tool_calls)
    assert first != second  # parallel calls get distinct ids

    for outputs, fragment in [
        ([{"tool_call_id": "call_nope", "output": "x"}, {"tool_call_id": second, "output": "y"}],
         "Invalid tool_call_id: call_nope"),
        ([{"tool_call_id": first, "output": "x"}], "Expected tool outputs for call_ids"),
        ([{"tool_call_id": first, "output": "x"}, {"tool_call_id": first, "output": "x"}],
         "Duplicate tool_call_id"),
    ]:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.beta.threads.runs.submit_tool_outputs(
                run_id=run.id, thread_id=run.thread_id, tool_outputs=outputs)  # type: ignore[arg-type]
        assert fragment in _message(caught.value)
        assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]

    # The rejected submissions changed nothing: a correct one still completes the run.
    still = await client.beta.threads.runs.retrieve(run_id=run.id, thread_id=run.thread_id)
    assert still.status == "requires_action"
    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=run.thread_id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": first, "output": "A"}, {"tool_call_id": second, "output": "B"}])
    assert done.status == "completed"


async def test_submit_when_not_requires_action_is_a_400(client: openai.AsyncOpenAI) -> None:
    run = await _start(client, "[[reply:done]]")
    run = await _wait(client, run, "completed")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=run.thread_id,
            tool_outputs=[{"tool_call_id": "call_x", "output": "x"}])
    assert _message(caught.value) == 'Runs in status "completed" do not accept tool outputs.'


async def test_thread_lock_refuses_messages_and_runs_while_a_run_is_active(
    client: openai.AsyncOpenAI,
) -> None:
    run = await _start(client, "[[delay:1.5]] [[reply:slow]]")
    expected = f"Thread {run.thread_id} already has an active run {run.id}."
    with pytest.raises(openai.BadRequestError) as message_error:
        await client.beta.threads.messages.create(thread_id=run.thread_id, role="user",
                                                  content="interrupt")
    assert _message(message_error.value) == expected
    with pytest.raises(openai.BadRequestError) as run_error:
        await client.beta.threads.runs.create(thread_id=run.thread_id,
                                              assistant_id=run.assistant_id)
    assert _message(run_error.value) == expected
    await _wait(client, run, "completed")
    await client.beta.threads.messages.create(thread_id=run.thread_id, role="user",
                                              content="now it is fine")


async def test_concurrent_run_creation_lets_exactly_one_win(client: openai.AsyncOpenAI) -> None:
    assistant = await client.beta.assistants.create(model="fake-model")
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": "[[delay:1]] race"}])
    results = await asyncio.gather(*(
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        for _ in range(5)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, Run)]
    losers = [r for r in results if isinstance(r, openai.BadRequestError)]
    assert len(winners) == 1 and len(losers) == 4, results
    await _wait(client, winners[0], "completed")


async def test_cancel_during_a_slow_llm_call(client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    marker = f"slow-{uuid.uuid4().hex}"
    run = await _start(client, f"[[delay:20]] {marker}")
    deadline = time.monotonic() + 15
    while not fake_llm.requests_containing(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    started = time.monotonic()
    cancelling = await client.beta.threads.runs.cancel(run_id=run.id, thread_id=run.thread_id)
    assert cancelling.status in ("cancelling", "cancelled")
    final = await _wait(client, run, "cancelled", timeout=15)
    # The call is cancelled (at its workflow task's next heartbeat, <= 4 s), not waited
    # out (the model would take 20 s).
    assert time.monotonic() - started < 10
    assert final.cancelled_at is not None and final.expires_at is None
    messages = await client.beta.threads.messages.list(thread_id=run.thread_id)
    assert [m.role for m in messages.data] == ["user"]
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.runs.cancel(run_id=run.id, thread_id=run.thread_id)


async def test_cancel_while_waiting_for_tool_outputs(client: openai.AsyncOpenAI) -> None:
    run = await _start(client, '[[call:lookup {"q": "x"}]]')
    await _wait(client, run, "requires_action")
    await client.beta.threads.runs.cancel(run_id=run.id, thread_id=run.thread_id)
    final = await _wait(client, run, "cancelled")
    assert final.required_action is None
    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id)
    assert [(s.type, s.status) for s in steps.data] == [("tool_calls", "cancelled")]
    assert steps.data[0].cancelled_at is not None


async def test_llm_500_twice_then_success_completes(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    marker = f"flaky-{uuid.uuid4().hex}"
    run = await _start(client, f"[[fail:500x2]] {marker} [[reply:recovered]]")
    final = await _wait(client, run, "completed", "failed")
    assert final.status == "completed", final.last_error
    assert len(fake_llm.requests_containing(marker)) == 3
    messages = await client.beta.threads.messages.list(thread_id=run.thread_id)
    assert messages.data[0].content[0].text.value == "recovered"  # type: ignore[union-attr]


async def test_llm_400_fails_the_run_at_once(client: openai.AsyncOpenAI, fake_llm: FakeLLM) -> None:
    marker = f"bad-prompt-{uuid.uuid4().hex}"
    run = await _start(client, f"[[fail:400]] {marker}")
    final = await _wait(client, run, "failed")
    assert final.last_error is not None
    assert final.last_error.code == "invalid_prompt"
    assert "400" in final.last_error.message
    assert final.failed_at is not None
    assert len(fake_llm.requests_containing(marker)) == 1  # not retried


async def test_llm_429_until_attempts_run_out_is_rate_limit_exceeded(
    client: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    marker = f"limited-{uuid.uuid4().hex}"
    run = await _start(client, f"[[fail:429]] {marker}")
    final = await _wait(client, run, "failed")
    assert final.last_error is not None and final.last_error.code == "rate_limit_exceeded"
    # Retried by Temporal (3 attempts in the test settings), honouring Retry-After.
    assert len(fake_llm.requests_containing(marker)) == 3


async def test_llm_garbage_and_truncated_streams_end_as_server_error(
    client: openai.AsyncOpenAI,
) -> None:
    for directive in ("[[garbage]]", "[[truncate]]"):
        run = await _start(client, f"{directive} broken output")
        final = await _wait(client, run, "failed")
        assert final.last_error is not None and final.last_error.code == "server_error"
