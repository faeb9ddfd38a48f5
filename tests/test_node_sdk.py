"""The original project's JavaScript walkthrough, run by node with the official `openai` npm SDK.

node cannot use an ASGI transport, so the session's `app` is served over real HTTP by uvicorn
(see `live_server_url`, meant to be copied by other tests that need a real socket). The SDK is
pinned in tests/js/package.json + package-lock.json; a fresh clone gets it via `npm ci`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.node, pytest.mark.usefixtures("worker")]

JS_DIR = Path(__file__).parent / "js"
NODE_TIMEOUT_SECONDS = 120
NPM_CI_TIMEOUT_SECONDS = 300


async def _run(*cmd: str, cwd: Path, env: dict[str, str] | None = None,
               limit_seconds: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{' '.join(cmd)} timed out after {limit_seconds}s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
async def node_sdk() -> str:
    """Path to `node`, with tests/js/node_modules installed from the lock file if missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the Node SDK test needs Node.js >= 20 and npm")
    if not (JS_DIR / "node_modules" / "openai" / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not on PATH; needed to install tests/js (npm ci)")
        code, out, err = await _run(npm, "ci", "--no-audit", "--no-fund", cwd=JS_DIR,
                                    limit_seconds=NPM_CI_TIMEOUT_SECONDS)
        assert code == 0, f"npm ci failed ({code}):\n{out}\n{err}"
    return node


async def run_node(node: str, script: str, base_url: str, *args: str) -> dict[str, Any]:
    """Run tests/js/`script` against `base_url`; return the one JSON line it prints."""
    env = {**os.environ, "ASSISTANTS_BASE_URL": base_url}
    code, out, err = await _run(node, str(JS_DIR / script), *args, cwd=JS_DIR, env=env,
                                limit_seconds=NODE_TIMEOUT_SECONDS)
    assert code == 0, f"{script} exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{out}\nstderr:\n{err}"
    result: dict[str, Any] = json.loads(lines[0])
    return result


async def test_original_weather_bot_js_flow(node_sdk: str, live_server_url: str) -> None:
    result = await run_node(node_sdk, "weather_flow.mjs", live_server_url)

    assert result["run_status"] == "completed"
    assert result["tool_call_name"] == "getCurrentWeather"
    assert result["reply"] == 'Tool results: {"temperature": 22, "unit": "celsius"}'
    assert result["message_roles"] == ["user", "assistant"]
    assert result["assistant_id"].startswith("asst_")


def _assert_before(events: list[str], *names: str) -> None:
    """Each of `names` occurs in `events`, first occurrences in this order."""
    missing = [name for name in names if name not in events]
    assert not missing, f"missing {missing} in {events}"
    firsts = [events.index(name) for name in names]
    assert firsts == sorted(firsts), f"expected {names} in this order, got {events}"


async def test_stream_helper_text_run_token_by_token(
    node_sdk: str, live_server_url: str, http: httpx.AsyncClient
) -> None:
    """Issue #4: `runs.stream(...)` with `.on('textDelta')` / `.on('event')` / `finalRun()`."""
    result = await run_node(node_sdk, "stream_flow.mjs", live_server_url, "text")
    events = result["events"]
    _assert_before(events, "thread.run.created", "thread.run.queued", "thread.run.in_progress",
                   "thread.message.created", "thread.message.delta",
                   "thread.message.completed", "thread.run.completed")
    assert events[-1] == "thread.run.completed"
    assert result["run_status"] == "completed"
    assert len(result["deltas"]) > 5  # token by token, not one blob
    assert events.count("thread.message.delta") == len(result["deltas"])

    stored = (await http.get(f"/v1/threads/{result['thread_id']}/messages")).json()["data"]
    assert [m["role"] for m in stored] == ["assistant", "user"]
    stored_text = stored[0]["content"][0]["text"]["value"]
    assert result["text"] == stored_text == " ".join(f"w{i}" for i in range(1, 11))
    assert stored[0]["run_id"] == result["run_id"]
    assert result["final_messages"] == [{"id": stored[0]["id"], "text": stored_text}]
    assert result["messages_done"] == [
        {"id": stored[0]["id"], "status": "completed", "text": stored_text}]


async def test_stream_helper_function_run_then_submit_tool_outputs_stream(
    node_sdk: str, live_server_url: str, http: httpx.AsyncClient
) -> None:
    """Issue #4: the first stream stops at requires_action; `submitToolOutputsStream` resumes."""
    result = await run_node(node_sdk, "stream_flow.mjs", live_server_url, "function")
    first, second = result["first"], result["second"]

    assert first["events"][-1] == "thread.run.requires_action"
    assert first["run_status"] == "requires_action"
    _assert_before(first["events"], "thread.run.created", "thread.run.queued",
                   "thread.run.in_progress", "thread.run.step.created",
                   "thread.run.requires_action")
    assert "thread.message.created" not in first["events"]  # a call, not a message
    assert first["deltas"] == [] and first["final_messages"] == []
    assert first["messages_done"] == []
    [call] = result["tool_calls"]
    assert call["name"] == "getCurrentWeather"
    assert json.loads(call["arguments"]) == {"location": "Paris"}

    assert second["run_id"] == first["run_id"]
    assert second["events"][-1] == "thread.run.completed"
    assert second["run_status"] == "completed"
    _assert_before(second["events"], "thread.run.queued", "thread.run.in_progress",
                   "thread.message.created", "thread.message.delta",
                   "thread.message.completed", "thread.run.completed")
    answer = 'Tool results: {"temperature": 22, "unit": "celsius"}'
    assert result["text"] == answer

    stored = (await http.get(f"/v1/threads/{result['thread_id']}/messages")).json()["data"]
    assert stored[0]["role"] == "assistant"
    assert stored[0]["content"][0]["text"]["value"] == answer
    assert second["final_messages"] == [{"id": stored[0]["id"], "text": answer}]
    assert second["messages_done"] == [{"id": stored[0]["id"], "status": "completed",
                                        "text": answer}]
    run = (await http.get(f"/v1/threads/{result['thread_id']}/runs/{first['run_id']}")).json()
    assert run["status"] == "completed"
