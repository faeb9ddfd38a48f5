"""Shared pieces of the fault-injection tests: worker and API processes, private stacks, polls.

Every process here is started from the main thread: the embedded servers and the worker/API
children die with the *thread* that spawned them (PR_SET_PDEATHSIG), so spawning from a
thread-pool thread could kill them at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types.beta.threads import Run

from api.app import create_app
from core.migrate import upgrade
from core.settings import Settings
from launcher.embedded import EmbeddedStack
from launcher.processes import ChildProcess, free_port, port_is_open
from tests.fake_llm import FakeLLM
from tests.sdk_client import sdk_over

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
READY_LINE = "worker polling task queue"

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "getCurrentWeather",
        "description": "Get the weather in location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]},
    },
}


def new_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def worker_env(stack_env: dict[str, str], fake_llm: FakeLLM, settings: Settings, queue: str,
               **extra: str) -> dict[str, str]:
    """The environment of a `python -m launcher.cli worker` serving `queue`."""
    return {
        **stack_env,
        "TEMPORAL_TASK_QUEUE": queue,
        "MODEL_URL": fake_llm.base_url,
        "MODEL_API_KEY": "k",
        "LLM_RETRY_INITIAL_SECONDS": "0.2",
        "TEMPORAL_SEARCH_ATTRIBUTES": stack_env.get(
            "TEMPORAL_SEARCH_ATTRIBUTES", str(settings.temporal_search_attributes).lower()),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
        **extra,
    }


class Workers:
    """Worker processes (`python -m launcher.cli worker`) polling one dedicated queue."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.started: list[ChildProcess] = []

    async def start(self) -> ChildProcess:
        n = len(self.started) + 1
        # cwd=tmp_path: no stray .env file is read; the package is installed (editable).
        proc = ChildProcess(f"worker-{n}", [sys.executable, "-m", "launcher.cli", "worker"],
                            self.tmp_path / f"worker-{n}.log", env=self.env, cwd=self.tmp_path)
        self.started.append(proc)
        await wait_for(lambda: READY_LINE in proc.log_path.read_text(errors="replace"),
                       60, f"{proc.name} to start polling", self)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.log_tail(40)}" for p in self.started)

    async def stop_all(self) -> None:
        for proc in self.started:
            await asyncio.to_thread(proc.stop)  # no-op (just closes the log) once killed


class ApiProcess:
    """`python -m launcher.cli api` on a free port: a real, separately killable API."""

    def __init__(self, name: str, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = ChildProcess(
            name, [sys.executable, "-m", "launcher.cli", "api", "--host", "127.0.0.1",
                   "--port", str(self.port)],
            tmp_path / f"{name}.log", env={**env, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)

    async def ready(self, seconds: float = 60) -> ApiProcess:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.proc.running():
                raise AssertionError(f"{self.proc.name} exited:\n{self.proc.log_tail()}")
            if port_is_open(self.port):
                return self
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.proc.name} did not listen in {seconds}s:\n"
                             f"{self.proc.log_tail()}")

    def logs(self) -> str:
        return f"--- {self.proc.name} ---\n{self.proc.log_tail(40)}"


async def wait_for(predicate: Callable[[], Any], seconds: float, what: str,
                   workers: Workers | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except OSError:  # e.g. the log file is not there yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}\n"
                         f"{workers.logs() if workers else ''}")


async def poll_run(sdk: openai.AsyncOpenAI, thread_id: str, run_id: str, until: set[str],
                   seconds: float, workers: Workers | None = None) -> Run:
    deadline = time.monotonic() + seconds
    while True:
        run = await sdk.beta.threads.runs.retrieve(run_id=run_id, thread_id=thread_id)
        if run.status in until:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status!r} after {seconds}s\n"
                                 f"{workers.logs() if workers else ''}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def api_sdk(settings: Settings) -> AsyncIterator[openai.AsyncOpenAI]:
    """An in-process API (its own app and lifespan) built from `settings`, and an SDK on it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
    ) as http:
        yield sdk_over(http)


def is_envelope(body: Any) -> bool:
    """OpenAI's error shape, exactly: {"error": {"message", "type", "param", "code"}}."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return False
    error = body["error"]
    return (isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
            and isinstance(error["message"], str) and bool(error["message"])
            and isinstance(error["type"], str))


def envelope_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{response.status_code} body is not JSON: "
                             f"{response.text[:300]!r}") from exc
    assert is_envelope(body), (response.status_code, body)
    return body["error"]  # type: ignore[no-any-return]


class PrivateStack:
    """An EmbeddedStack of its own (Postgres and Temporal here; Redis and S3 borrowed from the
    session), so a test may kill its servers without disturbing any other test."""

    def __init__(self, borrowed: dict[str, str]) -> None:
        # Not under pytest's tmp dir (mode 0700 locks out the postgres system user).
        self.data_dir = Path(tempfile.mkdtemp(prefix="assistants-faults-stack-"))
        # Not ephemeral: the product's durable Postgres settings. With fsync and synchronous
        # commit off, a crashed Postgres forgets its last commits, and a test that crashes
        # it would blame the product for the test stack's shortcut.
        self.stack = EmbeddedStack(self.data_dir, ephemeral=False)
        self.borrowed = borrowed

    def start(self) -> dict[str, str]:
        env = self.stack.start(self.borrowed)
        upgrade(env["DATABASE_URL"])
        # From now on a restarted server comes back on the same port and data dir.
        self.stack.ports.postgres = int(env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
        self.stack.ports.temporal = int(self.stack.urls["temporal"].rsplit(":", 1)[1])
        self.stack.ports.temporal_ui = int(self.stack.urls["temporal_ui"].rsplit(":", 1)[1])
        self.env = env
        return env

    def proc(self, name: str) -> ChildProcess:
        return self.stack.processes[name]

    async def restart(self, name: str) -> None:
        """Start `postgres` or `temporal` again on the same port and data dir."""
        starter = {"postgres": self.stack.start_postgres,
                   "temporal": self.stack.start_temporal}[name]
        ready = starter()  # spawned here, on the main thread
        await asyncio.to_thread(ready)

    def stop(self) -> None:
        self.stack.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
