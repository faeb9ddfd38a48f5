"""A run's file_search waits for its stores' files still being ingested, as OpenAI's does.

Ingestion is slowed at the one thing outside the product, the embeddings server: the
fake answers an input holding `[[embeddelay:S]]` S seconds late.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import openai
import pytest

import activities.file_search

pytestmark = [pytest.mark.usefixtures("worker"),
              pytest.mark.filterwarnings("ignore:The Assistants API is deprecated")]
FILE_SEARCH: list[Any] = [{"type": "file_search"}]  # Any: the SDK wants its TypedDicts


async def _attach_and_run(client: openai.AsyncOpenAI, delay: float) -> tuple[str, str, Any]:
    """A file attached to a message and a run created at once; (file id, store id, results)."""
    marker = uuid.uuid4().hex
    upload = await client.files.create(file=("okapi.txt", (
        f"Okapis have striped legs like zebras. {marker} [[embeddelay:{delay}]]").encode()),
        purpose="assistants")
    assistant = await client.beta.assistants.create(model="fake-model", tools=FILE_SEARCH)
    thread = await client.beta.threads.create(messages=[{
        "role": "user", "content": '[[call:file_search {"query": "okapi striped legs"}]]',
        "attachments": [{"file_id": upload.id, "tools": FILE_SEARCH}]}])
    assert thread.tool_resources is not None and thread.tool_resources.file_search is not None
    [store_id] = thread.tool_resources.file_search.vector_store_ids or []
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id,
                                                      order="asc")
    call = steps.data[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert call.type == "file_search"
    return upload.id, store_id, call.file_search.results  # type: ignore[union-attr]


async def test_run_waits_for_an_attachment_still_being_ingested(
        client: openai.AsyncOpenAI) -> None:
    # Embedding the file takes 3 s, far longer than the run takes to reach its search.
    file_id, store_id, results = await _attach_and_run(client, 3)
    assert results and results[0].file_id == file_id  # found: the search waited for it
    vs_file = await client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
    assert vs_file.status == "completed"


async def test_wait_is_bounded_then_searches_what_is_there(
        client: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker runs in this process, so the bound it reads is the patched one.
    monkeypatch.setattr(activities.file_search, "INGESTION_WAIT_SECONDS", 0.5)
    started = time.monotonic()
    file_id, store_id, results = await _attach_and_run(client, 8)
    assert time.monotonic() - started < 8  # gave up well before ingestion ended ...
    assert results == []  # ... and searched anyway: nothing ingested yet
    vs_file = await client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
    assert vs_file.status == "in_progress"
