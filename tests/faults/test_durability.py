"""Durability: a worker process killed with SIGKILL loses nothing and duplicates nothing.

These runs go to a dedicated task queue served only by worker *processes* started here,
so the in-process `worker` fixture (default task queue) never touches them.
"""

from __future__ import annotations

import json
import uuid

import openai

from tests.fake_llm import FakeLLM
from tests.faults.helpers import TERMINAL, WEATHER_TOOL, Workers, poll_run, wait_for


async def test_sigkill_during_llm_call_loses_and_duplicates_nothing(
    sdk: openai.AsyncOpenAI, workers: Workers, fake_llm: FakeLLM
) -> None:
    marker = f"durable-{uuid.uuid4().hex}"
    worker1 = await workers.start()
    assistant = await sdk.beta.assistants.create(model="fake-model")
    thread = await sdk.beta.threads.create(
        messages=[{"role": "user", "content": f"{marker} [[delay:3]] [[reply:survived]]"}])
    run = await sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    # Worker #1 is inside the model call: the fake LLM holds the answer for 3 s.
    await wait_for(lambda: fake_llm.requests_containing(marker), 30,
                   "worker #1 to call the model", workers)
    worker1.kill()
    assert worker1.process.returncode == -9
    assert len(fake_llm.requests_containing(marker)) == 1
    current = await sdk.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)
    assert current.status == "in_progress"
    messages = await sdk.beta.threads.messages.list(thread_id=thread.id)
    assert [m.role for m in messages.data] == ["user"]

    await workers.start()
    # Nobody tells Temporal the attempt died: the workflow task running the model turn
    # (a local activity) times out first (RUN_TASK_TIMEOUT_SECONDS, 5 s); worker #2 then
    # replays the run and makes the model call again, its own 3 s.
    done = await poll_run(sdk, thread.id, run.id, TERMINAL, 60, workers)
    assert done.status == "completed", (done.last_error, workers.logs())

    messages = await sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assistant_messages = [m for m in messages.data if m.role == "assistant"]
    assert len(assistant_messages) == 1, [m.content for m in assistant_messages]
    assert assistant_messages[0].content[0].text.value == "survived"  # type: ignore[union-attr]
    assert assistant_messages[0].run_id == run.id

    steps = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert [(s.type, s.status) for s in steps.data] == [("message_creation", "completed")]
    assert (steps.data[0].step_details.message_creation.message_id  # type: ignore[union-attr]
            == assistant_messages[0].id)

    # The call really was interrupted and made again.
    assert len(fake_llm.requests_containing(marker)) >= 2


async def test_sigkill_while_waiting_for_tool_outputs(
    sdk: openai.AsyncOpenAI, workers: Workers, fake_llm: FakeLLM
) -> None:
    marker = f"durable-tools-{uuid.uuid4().hex}"
    worker1 = await workers.start()
    assistant = await sdk.beta.assistants.create(model="fake-model", tools=[WEATHER_TOOL])
    content = (f'{marker} [[call:getCurrentWeather {{"location": "Paris"}}]] '
               "[[after_tool:survived with tools]]")
    thread = await sdk.beta.threads.create(messages=[{"role": "user", "content": content}])
    run = await sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    waiting = await poll_run(sdk, thread.id, run.id, {"requires_action"} | TERMINAL, 30, workers)
    assert waiting.status == "requires_action", (waiting.last_error, workers.logs())
    assert waiting.required_action is not None
    calls = waiting.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1 and json.loads(calls[0].function.arguments) == {"location": "Paris"}

    worker1.kill()
    assert worker1.process.returncode == -9
    # The update needs a worker to run it: worker #2 serves it (after replaying the history).
    await workers.start()
    submitted = await sdk.beta.threads.runs.submit_tool_outputs(
        run_id=run.id, thread_id=thread.id,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "18C and cloudy"}])
    assert submitted.status in {"queued", "in_progress", "completed"}

    done = await poll_run(sdk, thread.id, run.id, TERMINAL, 60, workers)
    assert done.status == "completed", (done.last_error, workers.logs())

    messages = await sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assistant_messages = [m for m in messages.data if m.role == "assistant"]
    assert len(assistant_messages) == 1, [m.content for m in assistant_messages]
    assert (assistant_messages[0].content[0].text.value  # type: ignore[union-attr]
            == "survived with tools")

    steps = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id,
                                                   order="asc")
    assert [(s.type, s.status) for s in steps.data] == [
        ("tool_calls", "completed"), ("message_creation", "completed")]
    recorded = steps.data[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert recorded.id == calls[0].id
    assert recorded.function.output == "18C and cloudy"  # type: ignore[union-attr]

    # Nothing was interrupted here, so nothing was asked twice: one call per model turn.
    sent = fake_llm.requests_containing(marker)
    assert len(sent) == 2, sent
    assert sent[1]["messages"][-1] == {"role": "tool", "content": "18C and cloudy",
                                       "tool_call_id": calls[0].id}
