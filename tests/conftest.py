"""The test suite runs against the real stack, started here exactly as `assistants up` does.

Each service whose URL env var is set is used as is; the others are started
from their wheels in a temporary directory (and stopped at the end).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from core.migrate import upgrade
from core.settings import Settings
from launcher.embedded import EmbeddedStack
from tests.fake_anthropic import FakeAnthropic
from tests.fake_llm import FakeLLM
from tests.sdk_client import sdk_over
from worker import run_worker

SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY",
                "S3_BUCKET_NAME", "TEMPORAL_ADDRESS")


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    configured = {name: os.environ[name] for name in SERVICE_VARS if os.environ.get(name)}
    # Not under pytest's tmp dir: each pytest session resets that to mode 0700,
    # which locks out Postgres (it runs as its own user when we are root).
    data_dir = Path(tempfile.mkdtemp(prefix="assistants-test-stack-"))
    stack = EmbeddedStack(data_dir, ephemeral=True)
    try:
        env = stack.start(configured)
        upgrade(env["DATABASE_URL"])
        yield env
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """The only fake: an OpenAI-compatible model server, scripted by the messages it reads."""
    server = FakeLLM().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """Anthropic's Messages API, scripted the same way; `claude-*` models are routed here."""
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str], fake_llm: FakeLLM,
             fake_anthropic: FakeAnthropic) -> Settings:
    values: dict[str, Any] = {name.lower(): value for name, value in stack_env.items()}
    values.update(model_url=fake_llm.base_url,
                  # A model with a small context window, for truncation_strategy "auto".
                  models='{"small-window-model": {"context_window": 1600}}', model_api_key="fake-model-key",
                  anthropic_base_url=fake_anthropic.base_url,
                  anthropic_api_key="fake-anthropic-key",
                  # Quick retries keep the LLM-fault tests short.
                  llm_retry_initial_seconds=0.2, llm_retry_max_attempts=3,
                  llm_timeout_seconds=30,
                  # file_search: the fake's deterministic /v1/embeddings.
                  embeddings_url=fake_llm.base_url, embeddings_model="fake-embed")
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
async def worker(settings: Settings) -> AsyncIterator[None]:
    """A Temporal worker in the test process, polling the real Temporal server."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    await asyncio.sleep(0)
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="session", params=["/v1", ""], ids=["v1", "bare"])
def base_path(request: pytest.FixtureRequest) -> str:
    """Every SDK test runs against both `.../v1` and the bare base URL."""
    path: str = request.param
    return path


@pytest.fixture(scope="session")
async def client(http: httpx.AsyncClient, base_path: str) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = sdk_over(http, f"http://testserver{base_path}")
    yield sdk



@pytest.fixture(scope="session")
async def live_server_url(app: FastAPI) -> AsyncIterator[str]:
    """The session's (lifespan-entered) `app` over real HTTP on a free local port: for node,
    and for clients that must act on a stream's first events (the ASGI transport of `http`
    hands a response over only once it is complete). The socket is bound here and handed
    to uvicorn, so no other process can take the port in between."""
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


# Fixtures that start real servers: a test that needs one (directly or through another
# fixture) is an integration test; the rest are unit tests, which `pytest -m unit` runs in
# seconds without starting anything. Modules that start processes themselves (the
# launcher's end-to-end tests) mark themselves `integration`.
_SERVER_FIXTURES = frozenset({"stack_env", "env", "fake_llm", "fake_anthropic"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _SERVER_FIXTURES or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
