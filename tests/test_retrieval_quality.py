"""Retrieval quality on the labelled set in tests/retrieval_set/ (see tests/retrieval_eval.py).

18 short documents on unrelated topics, 33 queries (14 sharing the document's words, 19
paraphrased), ingested through the API like any vector store. The floors are the recall
measured on this set minus a small margin, so a change that makes search worse fails here.

The test suite's embedder is tests/fake_llm.py's hashed bag of words: its "vectors" measure
word overlap, not meaning, so the hybrid floor guards the fusion and the vector plumbing, not
semantic quality (bench/retrieval_recall.py measures that against a real embeddings server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from core.embeddings import Embedder
from tests.fake_llm import FakeLLM
from tests.retrieval_eval import documents, evaluate, queries
from tests.sdk_client import sdk_over

# Measured on this set with the fake embedder (2026-11-26; MRR moves by ~0.01-0.02 between
# runs: ties are broken by chunk id, which follows ingestion order):
#   full-text  R@5 0.848 (28/33)  MRR 0.82-0.83   (keyword R@5 1.0, paraphrase 0.737)
#   hybrid     R@5 0.879 (29/33)  MRR 0.79        (keyword R@5 1.0, paraphrase 0.789)
# Floors: measured minus ~0.05 (one or two queries of 33). Every keyword query must be found.
FLOORS = {
    "full_text": {"recall@5": 0.80, "mrr": 0.77},
    "hybrid": {"recall@5": 0.82, "mrr": 0.73},
}


@pytest.fixture(scope="module")
async def labelled_store(http: httpx.AsyncClient, worker: None) -> AsyncIterator[
        tuple[str, dict[str, str]]]:
    """The set ingested into one store: (store id, document name -> file id)."""
    # Over the shared ASGI client, not the two-base-URL `client`: ingest once, not twice.
    sdk = sdk_over(http)
    store = await sdk.vector_stores.create(name="retrieval quality")
    docs = documents()
    batch = await sdk.vector_stores.file_batches.upload_and_poll(
        store.id, files=[(name, data) for name, data in docs.items()], poll_interval_ms=100)
    assert batch.file_counts.completed == len(docs), batch.file_counts
    listed = [f async for f in sdk.vector_stores.files.list(store.id, limit=100)]
    names = {f.id: (await sdk.files.retrieve(f.id)).filename for f in listed}
    yield store.id, {name: file_id for file_id, name in names.items()}
    await sdk.vector_stores.delete(store.id)


def test_the_set_is_well_formed() -> None:
    docs, items = documents(), queries()
    assert 12 <= len(docs) <= 20 and 25 <= len(items) <= 40
    assert {item.doc for item in items} == set(docs)  # every document is asked about
    assert {item.kind for item in items} == {"keyword", "paraphrase"}
    assert len({item.query for item in items}) == len(items)


@pytest.mark.parametrize("mode", ["full_text", "hybrid"])
async def test_recall_floor(app: FastAPI, labelled_store: tuple[str, dict[str, str]],
                            fake_llm: FakeLLM, mode: str) -> None:
    store_id, file_ids = labelled_store
    embedder = Embedder(fake_llm.base_url, "fake-embed")
    async with app.state.sessions() as session:
        result = await evaluate(session, store_id, file_ids, mode, embedder)
    missed = [(q["query"], q["rank"]) for q in result["queries"]
              if q["rank"] is None or q["rank"] > 5]
    print(f"{mode}: R@1 {result['recall@1']} R@5 {result['recall@5']} MRR {result['mrr']} "
          f"keyword {result['keyword']} paraphrase {result['paraphrase']} missed {missed}")
    for metric, floor in FLOORS[mode].items():
        assert result[metric] >= floor, (metric, result[metric], missed)
    assert result["keyword"]["recall@5"] == 1.0, missed
