"""kill -9 of a worker process while 20 runs are inside their model call.

The runs go to a dedicated task queue served only by worker processes started here. Worker #1
is killed while the fake model holds all 20 answers; worker #2 takes over once the workflow
tasks running the model turns (local activities) time out (5 s). Every run must complete
exactly once.
"""

from __future__ import annotations

import asyncio
import uuid

import openai

from tests.fake_llm import FakeLLM
from tests.faults.helpers import (
    TERMINAL,
    Workers,
    poll_run,
    wait_for,
)

RUNS = 20


async def test_sigkill_with_20_runs_mid_llm_call_completes_each_exactly_once(
    sdk: openai.AsyncOpenAI, workers: Workers, fake_llm: FakeLLM
) -> None:
    worker1 = await workers.start()
    assistant = await sdk.beta.assistants.create(model="fake-model")
    batch = uuid.uuid4().hex[:8]
    markers = [f"crash-{batch}-{i:02d}" for i in range(RUNS)]

    async def start(marker: str) -> tuple[str, str]:
        run = await sdk.beta.threads.create_and_run(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user",
                                  "content": f"{marker} [[delay:4]] [[reply:answer {marker}]]"}]})
        return run.thread_id, run.id

    started = await asyncio.gather(*(start(m) for m in markers))

    # All 20 are inside the model call (the fake holds each answer for 4 s).
    await wait_for(lambda: all(fake_llm.requests_containing(m) for m in markers), 30,
                   "every run to reach the model", workers)
    worker1.kill()
    assert worker1.process.returncode == -9
    statuses = await asyncio.gather(*(
        sdk.beta.threads.runs.retrieve(run_id=r, thread_id=t) for t, r in started))
    assert {s.status for s in statuses} == {"in_progress"}

    await workers.start()
    finals = await asyncio.gather(*(poll_run(sdk, t, r, TERMINAL, 90, workers)
                                    for t, r in started))
    assert [f.status for f in finals] == ["completed"] * RUNS, (
        [(f.id, f.status, f.last_error) for f in finals if f.status != "completed"],
        workers.logs())

    async def check(thread_id: str, run_id: str, marker: str) -> None:
        messages = await sdk.beta.threads.messages.list(thread_id=thread_id, order="asc")
        replies = [m for m in messages.data if m.role == "assistant"]
        assert len(replies) == 1, (run_id, [m.content for m in replies])
        assert replies[0].run_id == run_id and replies[0].status == "completed"
        assert replies[0].content[0].text.value == f"answer {marker}"  # type: ignore[union-attr]
        steps = await sdk.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id)
        assert [(s.type, s.status) for s in steps.data] == [("message_creation", "completed")]
        assert (steps.data[0].step_details.message_creation.message_id  # type: ignore[union-attr]
                == replies[0].id)
        # The call really was interrupted and made again.
        assert len(fake_llm.requests_containing(marker)) >= 2

    await asyncio.gather(*(check(t, r, m) for (t, r), m in zip(started, markers, strict=True)))
