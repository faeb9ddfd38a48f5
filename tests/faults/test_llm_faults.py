"""Model faults the run must survive or report: timeouts, 429 + Retry-After, 5xx, broken streams.

Runs go to a dedicated queue served by an in-process worker whose model calls time out after
LLM_TIMEOUT (the API side's copy of the setting bounds the activity, the worker's the HTTP read).
tests/test_run_errors.py covers 500-then-success, 400, 429 exhausted, garbage and truncation;
here: what those leave out. The documented outcome (README "Model faults"): retried by Temporal,
then `failed` with `last_error.code` server_error / rate_limit_exceeded, never stuck.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import openai
import pytest
from openai.types.beta.threads import Run

from core.settings import Settings
from tests.fake_llm import FakeLLM
from tests.faults.helpers import TERMINAL, api_sdk, new_queue, poll_run
from worker import run_worker

LLM_TIMEOUT = 1.5
ATTEMPTS = 3


@pytest.fixture(scope="module")
def fault_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "temporal_task_queue": new_queue("faults-llm"), "llm_timeout_seconds": LLM_TIMEOUT,
        "llm_retry_initial_seconds": 0.2, "llm_retry_max_attempts": ATTEMPTS})


@pytest.fixture(scope="module")
async def sdk(fault_settings: Settings) -> AsyncIterator[openai.AsyncOpenAI]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(fault_settings, stop))
    try:
        async with api_sdk(fault_settings) as client:
            yield client
    finally:
        stop.set()
        await task


async def _run(sdk: openai.AsyncOpenAI, text: str) -> tuple[Run, str]:
    marker = f"llmfault-{uuid.uuid4().hex}"
    assistant = await sdk.beta.assistants.create(model="fake-model")
    run = await sdk.beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": f"{marker} {text}"}]})
    return run, marker


async def _final(sdk: openai.AsyncOpenAI, run: Run, seconds: float = 40) -> Run:
    final = await poll_run(sdk, run.thread_id, run.id, TERMINAL, seconds)
    if final.status == "failed":
        assert final.failed_at is not None and final.last_error is not None
    # Whatever happened, nothing the run wrote is left looking alive.
    messages = await sdk.beta.threads.messages.list(thread_id=run.thread_id)
    assert all(m.status != "in_progress" for m in messages.data), [
        (m.id, m.status, m.content) for m in messages.data]
    steps = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id)
    assert all(s.status != "in_progress" for s in steps.data), [
        (s.id, s.type, s.status) for s in steps.data]
    return final


async def test_model_timeout_is_retried_then_fails_as_server_error(
    sdk: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    started = time.monotonic()
    run, marker = await _run(sdk, "[[delay:6]] [[reply:too late]]")
    final = await _final(sdk, run)
    assert final.status == "failed", final
    assert final.last_error is not None and final.last_error.code == "server_error"
    assert len(fake_llm.requests_containing(marker)) == ATTEMPTS
    # Timed out each time, not waited out (3 x 6 s).
    assert time.monotonic() - started < 15


async def test_answer_longer_than_the_timeout_completes_when_no_token_is_late(
    sdk: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    # Tokens arrive every 0.3 s (each read is in time) but the answer takes 9 s in all, six
    # times the silence limit: a slow model streaming a long answer is not a fault.
    run, marker = await _run(sdk, "[[tokens:30]] [[tokendelay:300]]")
    final = await _final(sdk, run)
    assert final.status == "completed", final
    assert len(fake_llm.requests_containing(marker)) == 1
    messages = await sdk.beta.threads.messages.list(thread_id=run.thread_id)
    text = messages.data[0].content[0].text.value  # type: ignore[union-attr]
    assert len(text.split()) == 30, text


async def test_429_honours_retry_after_then_completes(
    sdk: openai.AsyncOpenAI, fake_llm: FakeLLM
) -> None:
    run, marker = await _run(sdk, "[[fail:429x1]] [[reply:after the limit]]")
    seen: list[float] = []

    async def watch() -> None:
        while len(seen) < 2:
            count = len(fake_llm.requests_containing(marker))
            seen.extend([time.monotonic()] * (count - len(seen)))
            await asyncio.sleep(0.01)

    await asyncio.wait_for(watch(), 20)
    final = await _final(sdk, run)
    assert final.status == "completed", final.last_error
    # The fake sends Retry-After: 1; the retry policy alone would come back after 0.2 s.
    assert seen[1] - seen[0] >= 0.9, seen
    assert len(fake_llm.requests_containing(marker)) == 2


@pytest.mark.parametrize("status", [502, 503])
async def test_5xx_until_attempts_run_out_is_server_error(
    sdk: openai.AsyncOpenAI, fake_llm: FakeLLM, status: int
) -> None:
    run, marker = await _run(sdk, f"[[fail:{status}]]")
    final = await _final(sdk, run)
    assert final.status == "failed", final
    assert final.last_error is not None and final.last_error.code == "server_error"
    assert str(status) in final.last_error.message
    assert len(fake_llm.requests_containing(marker)) == ATTEMPTS


@pytest.mark.parametrize("directive", ["[[garbage]]", "[[truncate]]"])
async def test_broken_streams_leave_no_live_message(
    sdk: openai.AsyncOpenAI, fake_llm: FakeLLM, directive: str
) -> None:
    # test_run_errors checks the run's code; here: what the half-streamed answer left behind.
    run, marker = await _run(sdk, f"{directive} some words that get cut off in the middle")
    final = await _final(sdk, run)
    assert final.status == "failed", final
    assert final.last_error is not None and final.last_error.code == "server_error"
    assert len(fake_llm.requests_containing(marker)) == ATTEMPTS

