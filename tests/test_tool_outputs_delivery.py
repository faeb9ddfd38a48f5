"""Tool outputs while Temporal retries the run's workflow task (api/services/run_workflows.py).

Temporal refuses updates while a workflow task is being retried ("Workflow Task in failed
state", seen under CPU starvation when a task timed out): the API tries again for a while
instead of answering 409 at once, and answers 409 if the refusal lasts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

import api.services.run_workflows

pytestmark = pytest.mark.usefixtures("worker")

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}}
REFUSAL = "Unable to perform workflow execution update due to Workflow Task in failed state."


async def _waiting_run(http: httpx.AsyncClient) -> tuple[str, str, str]:
    """(thread, run, call id) of a run in requires_action."""
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model",
                                                         "tools": [TOOL]})).json()["id"]
    text = f'[[call:lookup {{"q": "x"}}]] [[after_tool:done]] <{uuid.uuid4().hex[:8]}>'
    thread = (await http.post("/v1/threads", json={"messages": [
        {"role": "user", "content": text}]})).json()["id"]
    run = (await http.post(f"/v1/threads/{thread}/runs",
                           json={"assistant_id": assistant})).json()
    deadline = time.monotonic() + 30
    while run["status"] != "requires_action":
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)
        run = (await http.get(f"/v1/threads/{thread}/runs/{run['id']}")).json()
    call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    return thread, run["id"], call


def _refuse_updates(monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """Have Temporal refuse the next `times` updates as while a task is retried."""
    refused: list[str] = []
    real = WorkflowHandle.execute_update

    async def execute_update(self: WorkflowHandle[Any, Any], *args: Any, **kwargs: Any) -> Any:
        if len(refused) < times:
            refused.append(self.id)
            raise RPCError(REFUSAL, RPCStatusCode.FAILED_PRECONDITION, b"")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(WorkflowHandle, "execute_update", execute_update)
    return refused


async def test_outputs_refused_for_a_moment_are_delivered(
        http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    thread, run_id, call = await _waiting_run(http)
    refused = _refuse_updates(monkeypatch, times=2)
    response = await http.post(f"/v1/threads/{thread}/runs/{run_id}/submit_tool_outputs",
                               json={"tool_outputs": [{"tool_call_id": call, "output": "ok"}]})
    assert response.status_code == 200, response.text
    assert refused == [run_id, run_id]
    deadline = time.monotonic() + 30
    while (run := (await http.get(f"/v1/threads/{thread}/runs/{run_id}")).json())[
            "status"] != "completed":
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)


async def test_outputs_refused_for_too_long_are_a_409(
        http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    thread, run_id, call = await _waiting_run(http)
    monkeypatch.setattr(api.services.run_workflows, "TASK_RETRY_PATIENCE_SECONDS", 0.5)
    refused = _refuse_updates(monkeypatch, times=1_000)
    response = await http.post(f"/v1/threads/{thread}/runs/{run_id}/submit_tool_outputs",
                               json={"tool_outputs": [{"tool_call_id": call, "output": "ok"}]})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "run_not_active" and REFUSAL in error["message"]
    assert len(refused) >= 2  # it tried again before giving up
    # Still waiting, and still accepting outputs once Temporal does.
    monkeypatch.undo()
    response = await http.post(f"/v1/threads/{thread}/runs/{run_id}/submit_tool_outputs",
                               json={"tool_outputs": [{"tool_call_id": call, "output": "ok"}]})
    assert response.status_code == 200, response.text
