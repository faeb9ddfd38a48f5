"""core.retrieval.search (as a run's activity would call it), chunking, parsing and ingestion."""

from __future__ import annotations

import time

import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.ingest import IngestActivities
from core.chunking import chunk_text, count_tokens
from core.embeddings import Embedder
from core.parsing import ParseError, extract_text
from core.retrieval import fuse, search
from core.tables import ChunkRow, VectorStoreFileRow
from tests.fake_llm import FakeLLM
from workflows.ingest_types import FailIngestInput, IngestInput

CORPUS = {
    "volcano.txt": "Volcanoes erupt when magma rises through the crust and vents as lava and ash.",
    "bread.txt": "Sourdough bread rises slowly because wild yeast ferments the flour overnight.",
    "tides.txt": "Ocean tides follow the moon: its gravity pulls the sea into two daily bulges.",
    "chess.txt": "In chess the knight moves in an L shape and can jump over other pieces.",
}


# --- pure functions ------------------------------------------------------------
def test_chunks_overlap_and_are_exact_substrings() -> None:
    text = " ".join(f"w{i}" for i in range(2000))
    chunks = chunk_text(text, max_tokens=800, overlap_tokens=400)
    assert [c.token_count for c in chunks] == [800, 800, 800, 800]
    assert chunks[1].text.startswith("w400 ") and chunks[-1].text.endswith("w1999")
    assert all(c.text in text for c in chunks)
    assert count_tokens("Hello, world!") == 4
    assert chunk_text("   ") == []
    with pytest.raises(ValueError):
        chunk_text(text, max_tokens=100, overlap_tokens=51)


def test_parsing_formats_and_failures() -> None:
    html = b"<html><head><style>p{}</style></head><body><h1>Title</h1><p>Body &amp; more</p>"
    assert extract_text("page.html", html) == "Title\n\nBody & more"
    assert extract_text("data.json", b'{"a": 1}') == '{"a": 1}'
    assert extract_text("main.py", b"\xef\xbb\xbfprint('hi')\r\n") == "print('hi')"
    for name, data, code in [("x.png", b"\x89PNG", "unsupported_file"),
                             ("bad.json", b"{nope", "invalid_file"),
                             ("empty.txt", b"  \n", "invalid_file"),
                             ("latin.txt", b"caf\xe9", "invalid_file"),
                             ("scan.pdf", b"%PDF-1.7 junk", "invalid_file")]:
        with pytest.raises(ParseError) as caught:
            extract_text(name, data)
        assert caught.value.code == code, name


def test_rrf_fusion_is_normalised() -> None:
    assert fuse([]) == []
    fused = dict(fuse([[1, 2, 3], [2, 1]]))
    assert fused[1] == fused[2] and fused[1] < 1.0  # first once, second once
    assert dict(fuse([[7, 8], [7]]))[7] == 1.0  # first for every retriever
    assert dict(fuse([[7, 8], [7]]))[8] < 0.5  # found by one retriever of two


# --- search over ingested stores ---------------------------------------------
@pytest.fixture(scope="module")
async def corpus_store(client: openai.AsyncOpenAI, worker: None) -> str:
    store = await client.vector_stores.create(name="retrieval corpus")
    batch = await client.vector_stores.file_batches.upload_and_poll(
        store.id, files=[(name, text.encode()) for name, text in CORPUS.items()],
        poll_interval_ms=100)
    assert batch.file_counts.completed == len(CORPUS)
    return store.id


@pytest.fixture(scope="module")
def embedder(fake_llm: FakeLLM) -> Embedder:
    return Embedder(fake_llm.base_url, "fake-embed")


QUERIES = [("why does lava come out of a volcano", "volcano.txt"),
           ("yeast fermenting sourdough", "bread.txt"),
           ("how does the moon's gravity move the sea", "tides.txt"),
           ("which chess piece can jump", "chess.txt")]


@pytest.mark.parametrize(("query", "expected"), QUERIES)
async def test_hybrid_search_ranks_the_right_chunk_first(
        app: FastAPI, corpus_store: str, embedder: Embedder, query: str, expected: str) -> None:
    async with app.state.sessions() as session:
        chunks = (await session.scalars(select(ChunkRow).where(
            col(ChunkRow.vector_store_id) == corpus_store))).all()
        assert chunks and all(c.embedding_model == "fake-embed" for c in chunks)
        results = await search(session, [corpus_store], query, 3, embedder=embedder)
    assert results[0].filename == expected
    assert results[0].score == 1.0  # first for both full-text and vectors
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


@pytest.mark.parametrize(("query", "expected"), QUERIES)
async def test_full_text_only_search(app: FastAPI, corpus_store: str, query: str,
                                     expected: str) -> None:
    async with app.state.sessions() as session:
        results = await search(session, [corpus_store], query, 10)
    assert results[0].filename == expected
    # Full-text finds only chunks sharing a word with the query.
    assert len(results) < len(CORPUS)


async def test_threshold_scope_and_other_models(app: FastAPI, corpus_store: str,
                                                embedder: Embedder, fake_llm: FakeLLM) -> None:
    async with app.state.sessions() as session:
        assert await search(session, ["vs_other"], "volcano lava", embedder=embedder) == []
        strict = await search(session, [corpus_store], "volcano lava", 10, 0.9,
                              embedder=embedder)
        assert [r.filename for r in strict] == ["volcano.txt"]
        # Chunks embedded by another model are not compared with this query's vector;
        # full-text still answers.
        other = Embedder(fake_llm.base_url, "another-model")
        results = await search(session, [corpus_store], "knight", embedder=other)
        assert [r.filename for r in results] == ["chess.txt"]
        # An unreachable embeddings endpoint degrades to full-text, it does not fail.
        down = Embedder("http://127.0.0.1:9/v1", "fake-embed", timeout_seconds=2)
        results = await search(session, [corpus_store], "knight", embedder=down)
        assert [r.filename for r in results] == ["chess.txt"]


async def test_ingestion_without_embeddings(app: FastAPI, client: openai.AsyncOpenAI,
                                            embedder: Embedder) -> None:
    """The activity run directly with no embedder: chunks get no vectors, search still works."""
    store = await client.vector_stores.create(name="no embeddings")
    uploaded = await client.files.create(file=("owls.md", b"Owls hunt at night in silence."),
                                         purpose="assistants")
    async with app.state.sessions() as session, session.begin():
        session.add(VectorStoreFileRow(
            vector_store_id=store.id, id=uploaded.id, created_at=int(time.time()),
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 800,
                                                           "chunk_overlap_tokens": 400}},
            attributes={}, ingest_id="manual"))
    activities = IngestActivities(app.state.sessions, app.state.storage, None)
    result = await activities.ingest_file(IngestInput(store.id, uploaded.id, "manual"))
    assert (result.status, result.chunks) == ("completed", 1)
    # A stale attempt writes nothing.
    stale = await activities.ingest_file(IngestInput(store.id, uploaded.id, "older"))
    assert stale.status == "abandoned"
    async with app.state.sessions() as session:
        [chunk] = (await session.scalars(select(ChunkRow).where(
            col(ChunkRow.vector_store_id) == store.id))).all()
        assert chunk.embedding is None and chunk.embedding_model is None
        results = await search(session, [store.id], "owls at night", embedder=embedder)
    assert [r.file_id for r in results] == [uploaded.id]
    assert results[0].score == 1.0  # vectors took no part: full-text alone is the scale


async def test_embedding_failure_is_retryable_then_recorded(
        app: FastAPI, client: openai.AsyncOpenAI, embedder: Embedder) -> None:
    """A 5xx from /embeddings is retryable (Temporal retries); the workflow's final
    `fail_ingest` records server_error, and only for the attempt it belongs to."""
    store = await client.vector_stores.create(name="embed failure")
    uploaded = await client.files.create(file=("f.txt", b"text [[embedfail]]"),
                                         purpose="assistants")
    async with app.state.sessions() as session, session.begin():
        session.add(VectorStoreFileRow(
            vector_store_id=store.id, id=uploaded.id, created_at=int(time.time()),
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 800,
                                                           "chunk_overlap_tokens": 400}},
            attributes={}, ingest_id="manual"))
    activities = IngestActivities(app.state.sessions, app.state.storage, embedder)
    with pytest.raises(ApplicationError) as caught:
        await activities.ingest_file(IngestInput(store.id, uploaded.id, "manual"))
    assert caught.value.type == "EmbeddingFailed" and not caught.value.non_retryable
    error = {"code": "server_error", "message": caught.value.message}
    await activities.fail_ingest(FailIngestInput(store.id, uploaded.id, "stale", error))
    vs_file = await client.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)
    assert vs_file.status == "in_progress"  # a stale attempt changes nothing
    await activities.fail_ingest(FailIngestInput(store.id, uploaded.id, "manual", error))
    vs_file = await client.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)
    assert vs_file.status == "failed" and vs_file.last_error is not None
    assert vs_file.last_error.code == "server_error"
