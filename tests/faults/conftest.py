"""Every test in this package carries the `faults` marker (`pytest -m faults` runs them alone).

The fixtures here give a test its own task queue, an API starting runs on it, and worker
*processes* serving it (which the test may kill): the session's in-process worker, on the
default queue, never touches these runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from core.settings import Settings
from tests.fake_llm import FakeLLM
from tests.faults.helpers import Workers, api_sdk, new_queue, worker_env

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def queue() -> str:
    return new_queue("faults")


@pytest.fixture
async def sdk(settings: Settings, queue: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """An API of its own whose runs are started on the test's queue."""
    async with api_sdk(settings.model_copy(update={"temporal_task_queue": queue})) as client:
        yield client


@pytest.fixture
async def workers(tmp_path: Path, stack_env: dict[str, str], fake_llm: FakeLLM,
                  settings: Settings, queue: str) -> AsyncIterator[Workers]:
    group = Workers(tmp_path, worker_env(stack_env, fake_llm, settings, queue))
    try:
        yield group
    finally:
        await group.stop_all()
