"""The test suite runs against the real stack, started here exactly as `assistants up` does.

Each service whose URL env var is set is used as is; the others are started
from their wheels in a temporary directory (and stopped at the end).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from api.app import create_app
from core.migrate import upgrade
from core.settings import Settings
from launcher.embedded import EmbeddedStack

SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY",
                "S3_BUCKET_NAME", "TEMPORAL_ADDRESS")


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    configured = {name: os.environ[name] for name in SERVICE_VARS if os.environ.get(name)}
    stack = EmbeddedStack(tmp_path_factory.mktemp("stack"), ephemeral=True)
    try:
        env = stack.start(configured)
        upgrade(env["DATABASE_URL"])
        yield env
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    values: dict[str, Any] = {name.lower(): value for name, value in stack_env.items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


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
    sdk = openai.AsyncOpenAI(
        base_url=f"http://testserver{base_path}", api_key="test-key", http_client=http,
        max_retries=0,
    )
    yield sdk

