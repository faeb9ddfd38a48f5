"""Vector stores, their files and batches, ingestion and search, through the official SDK."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types import VectorStore
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from tests.wire import assert_wire

pytestmark = pytest.mark.usefixtures("worker")
POLL = 100  # ms between SDK polls


def make_pdf(text: str) -> bytes:
    """A minimal one-page PDF showing `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


async def test_lifecycle_and_wire_shape(client: openai.AsyncOpenAI,
                                        http: httpx.AsyncClient) -> None:
    store = await client.vector_stores.create(name="docs", metadata={"team": "search"},
                                              expires_after={"anchor": "last_active_at",
                                                             "days": 7})
    assert store.id.startswith("vs_") and store.object == "vector_store"
    assert (store.name, store.status, store.usage_bytes) == ("docs", "completed", 0)
    assert store.file_counts.total == 0 and store.metadata == {"team": "search"}
    assert store.expires_after is not None and store.expires_after.days == 7
    assert store.expires_at == store.last_active_at + 7 * 86400  # type: ignore[operator]
    assert_wire(VectorStore, (await http.get(f"/v1/vector_stores/{store.id}")).json())

    updated = await client.vector_stores.update(store.id, name="renamed", expires_after=None)
    assert (updated.name, updated.expires_after, updated.expires_at) == ("renamed", None, None)
    assert updated.metadata == {"team": "search"}
    assert store.id in [s.id async for s in client.vector_stores.list(limit=5)]

    deleted = await client.vector_stores.delete(store.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        store.id, "vector_store.deleted", True)
    with pytest.raises(openai.NotFoundError):
        await client.vector_stores.retrieve(store.id)


async def test_upload_and_poll_file_then_counts_content_attributes(
        client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    store = await client.vector_stores.create(name="one")
    text = "# Pelicans\n\nPelicans scoop fish with their throat pouch."
    vs_file = await client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("pelicans.md", text.encode()),
        attributes={"topic": "birds", "year": 2024}, poll_interval_ms=POLL)
    assert vs_file.status == "completed" and vs_file.last_error is None
    assert vs_file.attributes == {"topic": "birds", "year": 2024}
    assert vs_file.usage_bytes == len(text.encode())
    assert vs_file.chunking_strategy is not None
    assert vs_file.chunking_strategy.model_dump() == {
        "type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    raw = (await http.get(f"/v1/vector_stores/{store.id}/files/{vs_file.id}")).json()
    assert_wire(VectorStoreFile, raw)

    store = await client.vector_stores.retrieve(store.id)
    assert store.status == "completed" and store.usage_bytes == len(text.encode())
    assert store.file_counts.model_dump() == {
        "in_progress": 0, "completed": 1, "failed": 0, "cancelled": 0, "total": 1}

    pages = [p async for p in client.vector_stores.files.content(vs_file.id,
                                                                 vector_store_id=store.id)]
    assert [(p.type, p.text) for p in pages] == [("text", text)]

    updated = await client.vector_stores.files.update(vs_file.id, vector_store_id=store.id,
                                                      attributes={"topic": "fish"})
    assert updated.attributes == {"topic": "fish"}

    completed = await client.vector_stores.files.list(store.id, filter="completed")
    assert [f.id for f in completed.data] == [vs_file.id]
    assert (await client.vector_stores.files.list(store.id, filter="failed")).data == []

    deleted = await client.vector_stores.files.delete(vs_file.id, vector_store_id=store.id)
    assert (deleted.object, deleted.deleted) == ("vector_store.file.deleted", True)
    store = await client.vector_stores.retrieve(store.id)
    assert (store.file_counts.total, store.usage_bytes) == (0, 0)
    # Detaching keeps the file itself.
    assert (await client.files.retrieve(vs_file.id)).id == vs_file.id


async def test_batch_upload_and_poll_with_a_failure(client: openai.AsyncOpenAI,
                                                    http: httpx.AsyncClient) -> None:
    store = await client.vector_stores.create(name="batch")
    batch = await client.vector_stores.file_batches.upload_and_poll(
        store.id, poll_interval_ms=POLL, files=[
            ("a.txt", b"Alpha document about apples."),
            ("b.json", b'{"kind": "banana", "colour": "yellow"}'),
            ("c.png", b"\x89PNG\r\n\x1a\n\x00\x00binary"),
        ])
    assert batch.id.startswith("vsfb_") and batch.status == "completed"
    assert batch.file_counts.model_dump() == {
        "in_progress": 0, "completed": 2, "failed": 1, "cancelled": 0, "total": 3}
    raw = (await http.get(f"/v1/vector_stores/{store.id}/file_batches/{batch.id}")).json()
    assert_wire(VectorStoreFileBatch, raw)

    failed = await client.vector_stores.file_batches.list_files(batch.id,
                                                               vector_store_id=store.id,
                                                               filter="failed")
    [bad] = failed.data
    assert bad.status == "failed" and bad.last_error is not None
    assert bad.last_error.code == "unsupported_file"
    store = await client.vector_stores.retrieve(store.id)
    assert (store.file_counts.completed, store.file_counts.failed) == (2, 1)


async def test_create_with_file_ids_pdf_and_corrupt_pdf(client: openai.AsyncOpenAI) -> None:
    good = await client.files.create(file=("report.pdf", make_pdf("Quarterly walrus census")),
                                     purpose="assistants")
    corrupt = await client.files.create(file=("broken.pdf", b"%PDF-1.4\nnot really a pdf"),
                                        purpose="assistants")
    store = await client.vector_stores.create(name="pdfs", file_ids=[good.id, corrupt.id])
    assert store.file_counts.total == 2
    deadline = time.monotonic() + 30
    while store.file_counts.in_progress and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        store = await client.vector_stores.retrieve(store.id)
    assert store.status == "completed"
    assert (store.file_counts.completed, store.file_counts.failed) == (1, 1)
    bad = await client.vector_stores.files.retrieve(corrupt.id, vector_store_id=store.id)
    assert bad.last_error is not None and bad.last_error.code == "invalid_file"
    pages = [p async for p in client.vector_stores.files.content(good.id,
                                                                 vector_store_id=store.id)]
    assert pages[0].text is not None and "walrus census" in pages[0].text

    results = [r async for r in client.vector_stores.search(store.id, query="walrus")]
    assert [r.file_id for r in results] == [good.id]
    assert results[0].filename == "report.pdf" and 0 < results[0].score <= 1
    assert "walrus" in results[0].content[0].text


async def test_search_ranking_filters_and_query_lists(client: openai.AsyncOpenAI) -> None:
    store = await client.vector_stores.create(name="search")
    docs: dict[str, tuple[str, dict[str, str | float | bool]]] = {
        "rust.md": ("Rust ownership and borrowing rules prevent data races at compile time.",
                    {"lang": "rust", "stars": 5}),
        "python.md": ("Python's garbage collector uses reference counting plus a cycle detector.",
                      {"lang": "python", "stars": 4}),
        "go.md": ("Go schedules goroutines onto threads; channels pass data between them.",
                  {"lang": "go", "stars": 3}),
    }
    ids = {}
    for name, (text, attributes) in docs.items():
        f = await client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=(name, text.encode()), attributes=attributes,
            poll_interval_ms=POLL)
        ids[f.id] = name

    async def names(**kwargs: Any) -> list[str]:
        page = await client.vector_stores.search(store.id, **kwargs)
        return [ids[r.file_id] for r in page.data]

    assert (await names(query="garbage collector reference counting"))[0] == "python.md"
    assert (await names(query="borrowing rules for ownership"))[0] == "rust.md"
    assert (await names(query=["goroutines", "channels"]))[0] == "go.md"
    assert await names(query="data", max_num_results=1) in (["rust.md"], ["go.md"])
    # Filters on attributes: comparison and compound.
    assert await names(query="data", filters={"type": "eq", "key": "lang", "value": "go"}) == [
        "go.md"]
    compound = {"type": "and", "filters": [{"type": "gte", "key": "stars", "value": 4},
                                           {"type": "nin", "key": "lang", "value": ["rust"]}]}
    assert await names(query="reference counting data", filters=compound) == ["python.md"]
    # A high threshold keeps only chunks both retrievers ranked near the top.
    strict = await names(query="goroutines channels threads",
                         ranking_options={"score_threshold": 0.9})
    assert strict == ["go.md"]


async def test_batch_cancel_marks_in_progress_files_cancelled(
        client: openai.AsyncOpenAI) -> None:
    store = await client.vector_stores.create(name="cancel")
    # The fake embeddings endpoint fails this text, so ingestion keeps retrying.
    stuck = await client.files.create(file=("stuck.txt", b"never embeds [[embedfail]]"),
                                      purpose="assistants")
    batch = await client.vector_stores.file_batches.create(store.id, file_ids=[stuck.id])
    assert batch.status == "in_progress" and batch.file_counts.in_progress == 1
    cancelled = await client.vector_stores.file_batches.cancel(batch.id,
                                                              vector_store_id=store.id)
    assert cancelled.status == "cancelled"
    assert (cancelled.file_counts.in_progress, cancelled.file_counts.cancelled) == (0, 1)
    vs_file = await client.vector_stores.files.retrieve(stuck.id, vector_store_id=store.id)
    assert vs_file.status == "cancelled"


async def test_errors(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.vector_stores.create(file_ids=["file_doesnotexist"])
    store = await client.vector_stores.create()
    with pytest.raises(openai.NotFoundError):
        await client.vector_stores.files.create(vector_store_id=store.id,
                                                file_id="file_doesnotexist")
    bad_filter = await http.post(f"/v1/vector_stores/{store.id}/search",
                                 json={"query": "x", "filters": {"type": "like", "key": "a",
                                                                 "value": 1}})
    assert bad_filter.status_code == 400
    assert bad_filter.json()["error"]["code"] == "invalid_value"
    overlap = await http.post("/v1/vector_stores", json={"chunking_strategy": {
        "type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}}})
    assert overlap.status_code == 400
    missing = await http.post("/v1/vector_stores/vs_missing/search", json={"query": "x"})
    assert missing.status_code == 404
    wrong = await http.get(f"/v1/vector_stores/{store.id}/file_batches/file_abc")
    assert wrong.status_code == 400
