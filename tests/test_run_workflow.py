"""AssistantRunWorkflow on Temporal's time-skipping test server, with mocked activities:
answers, function calls, and tool outputs through the update (and its validator) and the
operators' signal. Expiry, cancel and model failures: test_run_workflow_ends.py.
These tests use none of the fixtures in conftest.py (they start real servers).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from tests.workflow_doubles import (  # time_skipping_env: the `env` fixture
    Recorder,
    outputs,
    started_run,
    submit,
    time_skipping_env,  # noqa: F401
    wait_for_signal_processed,
    wait_for_status,
)
from workflows.run import AssistantRunWorkflow
from workflows.types import (
    ModelTurnInput,
    ModelTurnResult,
    RecordToolOutputsInput,
    RunResult,
    RunState,
    SubmitToolOutputs,
)


# --- 1. text answer ----------------------------------------------------------------
@pytest.mark.parametrize(("kind", "status"), [("message", "completed"),
                                              ("incomplete", "incomplete")])
async def test_text_answer_completes(env: WorkflowEnvironment,
                                     kind: Literal["message", "incomplete"],
                                     status: Literal["completed", "incomplete"]) -> None:
    rec = Recorder(turns=[ModelTurnResult(kind)])
    async with started_run(env, rec) as run:
        assert await run.handle.result() == RunResult(status)
    # The answer itself is written by model_turn; the workflow writes no finish.
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
    ]


# --- 2. function calls, outputs through the update, then an answer -----------------
async def test_tool_outputs_update_resumes_run(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        state = await wait_for_status(run.handle, "requires_action")
        assert state == RunState("requires_action", 1, ["call_a", "call_b"])
        assert "record_tool_outputs" not in rec.names()

        submitted = outputs("call_b", "call_a")  # any order
        after = await submit(run.handle, submitted)
        assert after == RunState("queued", 1, [])
        assert await run.handle.result() == RunResult("completed")
        # Queried while the worker still runs (a closed workflow is replayed to answer).
        assert await run.handle.query(AssistantRunWorkflow.state) == RunState("completed", 2, [])
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("record_tool_outputs", RecordToolOutputsInput(run.run_id, 1, submitted.tool_outputs)),
        ("model_turn", ModelTurnInput(run.run_id, 2)),
    ]


# --- 3. the update's validator -----------------------------------------------------
@pytest.mark.parametrize("bad", [
    pytest.param(outputs("call_a", "call_x"), id="unknown-id"),
    pytest.param(outputs("call_a"), id="missing-id"),
    pytest.param(outputs("call_a", "call_a"), id="duplicate-id"),
    pytest.param(outputs("call_a", "call_b", "call_a"), id="duplicate-id-all-present"),
])
async def test_update_rejects_invalid_outputs(env: WorkflowEnvironment,
                                              bad: SubmitToolOutputs) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        with pytest.raises(WorkflowUpdateFailedError):
            await submit(run.handle, bad)
        # Rejected before anything was written; the run still waits for the same calls.
        assert "record_tool_outputs" not in rec.names()
        state = await run.handle.query(AssistantRunWorkflow.state)
        assert state == RunState("requires_action", 1, ["call_a", "call_b"])

        good = outputs("call_a", "call_b")
        await submit(run.handle, good)
        assert await run.handle.result() == RunResult("completed")
    assert rec.inputs("record_tool_outputs") == [
        RecordToolOutputsInput(run.run_id, 1, good.tool_outputs)]


async def test_update_during_a_model_turn_waits_then_is_rejected_by_a_text_answer(
    env: WorkflowEnvironment,
) -> None:
    """Outputs that arrive while the model turn is still ending are held, not refused: the
    API only forwards them when Postgres already says requires_action, which is written
    before this workflow sees the turn's result. A turn that ends in text refuses them."""
    rec = Recorder(turns=[ModelTurnResult("message")], release=asyncio.Event())
    async with started_run(env, rec) as run:
        await asyncio.wait_for(rec.model_started.wait(), timeout=10)
        update = asyncio.create_task(submit(run.handle, outputs("call_a")))
        await asyncio.sleep(0.5)
        assert not update.done()  # held while the model turn runs
        assert rec.release is not None
        rec.release.set()
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await update
        assert "completed" in str(rejected.value.cause)
        assert await run.handle.result() == RunResult("completed")
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
    ]


async def test_update_during_a_model_turn_is_accepted_when_the_turn_asks_for_it(
    env: WorkflowEnvironment,
) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"]), ModelTurnResult("message")],
                   release=asyncio.Event())
    async with started_run(env, rec) as run:
        await asyncio.wait_for(rec.model_started.wait(), timeout=10)
        update = asyncio.create_task(submit(run.handle, outputs("call_a")))
        await asyncio.sleep(0.5)
        assert rec.release is not None
        rec.release.set()
        assert await update == RunState("queued", 1, [])
        assert await run.handle.result() == RunResult("completed")
    assert rec.names() == ["model_turn", "record_tool_outputs", "model_turn"]


async def test_second_submission_for_a_turn_rejected(env: WorkflowEnvironment) -> None:
    """A second submission for the same turn (outputs already recorded) is rejected.
    Turn 2 asks for another function, so the run is still open when it arrives (a run
    that already ended refuses outputs at the API: tests/test_run_errors.py)."""
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"]),
                          ModelTurnResult("tool_calls", ["call_b"]), ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        await submit(run.handle, outputs("call_a"))
        with pytest.raises(WorkflowUpdateFailedError):
            await submit(run.handle, outputs("call_a"))
        await submit(run.handle, outputs("call_b"))
        assert await run.handle.result() == RunResult("completed")
    assert [i.turn for i in rec.inputs("record_tool_outputs")] == [1, 2]


async def test_racing_submissions_record_once(env: WorkflowEnvironment) -> None:
    """Two submissions at once (possibly in one workflow task): one wins, one is rejected."""
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a"]),
                          ModelTurnResult("tool_calls", ["call_b"]), ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        first, second = await asyncio.gather(
            *(submit(run.handle, outputs("call_a")) for _ in range(2)),
            return_exceptions=True)
        results = [first, second]
        assert sum(isinstance(r, WorkflowUpdateFailedError) for r in results) == 1
        assert RunState("queued", 1, []) in results
        await submit(run.handle, outputs("call_b"))
        assert await run.handle.result() == RunResult("completed")
    assert rec.inputs("record_tool_outputs") == [
        RecordToolOutputsInput(run.run_id, 1, outputs("call_a").tool_outputs),
        RecordToolOutputsInput(run.run_id, 2, outputs("call_b").tool_outputs)]


# --- 6. outputs through the operators' signal ----------------------------------------
async def test_tool_outputs_signal_resumes_run(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        good = outputs("call_a", "call_b")
        await run.handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal, good)
        assert await run.handle.result() == RunResult("completed")
    assert rec.calls == [
        ("model_turn", ModelTurnInput(run.run_id, 1)),
        ("record_tool_outputs", RecordToolOutputsInput(run.run_id, 1, good.tool_outputs)),
        ("model_turn", ModelTurnInput(run.run_id, 2)),
    ]


async def test_invalid_signal_is_ignored(env: WorkflowEnvironment) -> None:
    rec = Recorder(turns=[ModelTurnResult("tool_calls", ["call_a", "call_b"]),
                          ModelTurnResult("message")])
    async with started_run(env, rec) as run:
        await wait_for_status(run.handle, "requires_action")
        await run.handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal,
                                outputs("call_a", "call_x"))
        await wait_for_signal_processed(run.handle)
        state = await run.handle.query(AssistantRunWorkflow.state)
        assert state == RunState("requires_action", 1, ["call_a", "call_b"])
        assert "record_tool_outputs" not in rec.names()

        good = outputs("call_a", "call_b")
        await run.handle.signal(AssistantRunWorkflow.submit_tool_outputs_signal, good)
        assert await run.handle.result() == RunResult("completed")
    assert rec.inputs("record_tool_outputs") == [
        RecordToolOutputsInput(run.run_id, 1, good.tool_outputs)]
    assert [i.turn for i in rec.inputs("model_turn")] == [1, 2]
