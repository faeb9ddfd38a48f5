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
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

pytestmark = [pytest.mark.node, pytest.mark.usefixtures("worker")]

JS_DIR = Path(__file__).parent / "js"
NODE_TIMEOUT_SECONDS = 120
NPM_CI_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
async def live_server_url(app: FastAPI) -> AsyncIterator[str]:
    """Serve the session's (already lifespan-entered) `app` over HTTP on a free local port.

    The socket is bound here and handed to uvicorn, so there is no pick-a-port-then-bind race.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():  # startup failed: surface uvicorn's exception
                    task.result()
                    pytest.fail("uvicorn exited before it started serving")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


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


async def test_original_weather_bot_js_flow(node_sdk: str, live_server_url: str) -> None:
    env = {**os.environ, "ASSISTANTS_BASE_URL": live_server_url}
    code, out, err = await _run(node_sdk, str(JS_DIR / "weather_flow.mjs"), cwd=JS_DIR, env=env,
                                limit_seconds=NODE_TIMEOUT_SECONDS)
    assert code == 0, f"weather_flow.mjs exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{out}\nstderr:\n{err}"
    result = json.loads(lines[0])

    assert result["run_status"] == "completed"
    assert result["tool_call_name"] == "getCurrentWeather"
    assert result["reply"] == 'Tool results: {"temperature": 22, "unit": "celsius"}'
    assert result["message_roles"] == ["user", "assistant"]
    assert result["assistant_id"].startswith("asst_")
