"""The labelled retrieval set (tests/retrieval_set/) and how it is scored.

Shared by tests/test_retrieval_quality.py and bench/retrieval_recall.py. Each query
names the one document that answers it; a search's ranking is turned into a ranking
of distinct documents (a document's best chunk counts), and scored by recall@k
(the right document among the first k) and MRR (mean of 1/rank, 0 when not found).

Three retrievers, all over the same ingested chunks:
- `full_text`: core.retrieval.search without an embedder (Postgres full-text only);
- `vectors`: cosine distance on the chunks' embeddings alone, the same query
  core.retrieval runs as its vector leg;
- `hybrid`: core.retrieval.search with the embedder (both, fused by RRF), what
  `/vector_stores/{id}/search` and a run's file_search do.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.embeddings import Embedder
from core.retrieval import search
from core.tables import ChunkRow, VectorStoreFileRow

SET_DIR = Path(__file__).resolve().parent / "retrieval_set"
MODES = ("full_text", "vectors", "hybrid")
DEPTH = 20  # results asked for per query (the set has fewer documents than that)


@dataclass(frozen=True)
class Query:
    query: str
    doc: str  # file name under retrieval_set/docs/
    kind: str  # "keyword" (shares the document's words) or "paraphrase"


def documents() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((SET_DIR / "docs").iterdir())}


def queries() -> list[Query]:
    return [Query(**item) for item in json.loads((SET_DIR / "queries.json").read_text())]


async def vector_ranking(session: AsyncSession, store_id: str, embedder: Embedder, query: str,
                         limit: int = DEPTH) -> list[str]:
    """File ids of the nearest chunks by cosine distance alone (no full-text), best first."""
    [vector] = await embedder.embed([query])
    distance = col(ChunkRow.embedding).cosine_distance(vector)  # type: ignore[attr-defined]
    rows = await session.execute(
        select(col(ChunkRow.file_id))
        .join(VectorStoreFileRow, and_(
            col(VectorStoreFileRow.vector_store_id) == col(ChunkRow.vector_store_id),
            col(VectorStoreFileRow.id) == col(ChunkRow.file_id)))
        .where(col(ChunkRow.vector_store_id) == store_id,
               col(VectorStoreFileRow.status) == "completed",
               col(ChunkRow.embedding_model) == embedder.model,
               func.vector_dims(col(ChunkRow.embedding)) == len(vector))
        .order_by(distance, col(ChunkRow.id)).limit(limit))
    return [row[0] for row in rows]


async def ranked_files(session: AsyncSession, store_id: str, query: str, mode: str,
                       embedder: Embedder | None) -> list[str]:
    """Distinct file ids in the order `mode` ranks them (a file's best chunk counts)."""
    if mode == "full_text":
        file_ids = [r.file_id for r in await search(session, [store_id], query, DEPTH)]
    elif mode == "hybrid":
        assert embedder is not None
        file_ids = [r.file_id for r in await search(session, [store_id], query, DEPTH,
                                                    embedder=embedder)]
    elif mode == "vectors":
        assert embedder is not None
        file_ids = await vector_ranking(session, store_id, embedder, query)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return list(dict.fromkeys(file_ids))


def rank_of(ranking: Sequence[str], wanted: str) -> int | None:
    """1-based rank of `wanted` in `ranking`, None if absent."""
    return ranking.index(wanted) + 1 if wanted in ranking else None


def scores(ranks: Sequence[int | None]) -> dict[str, float]:
    """recall@1, recall@5 and MRR of the ranks of the right documents (None: not found)."""
    if not ranks:
        return {"n": 0, "recall@1": float("nan"), "recall@5": float("nan"), "mrr": float("nan")}
    return {
        "n": len(ranks),
        "recall@1": round(sum(1 for r in ranks if r == 1) / len(ranks), 3),
        "recall@5": round(sum(1 for r in ranks if r is not None and r <= 5) / len(ranks), 3),
        "mrr": round(statistics.fmean(1 / r if r else 0.0 for r in ranks), 3),
    }


async def evaluate(session: AsyncSession, store_id: str, file_ids: dict[str, str],
                   mode: str, embedder: Embedder | None,
                   items: Sequence[Query] | None = None) -> dict[str, Any]:
    """Scores of `mode` over the set: overall, by query kind, and each query's rank.

    `file_ids` maps each document name to the file id it was uploaded as.
    """
    items = list(items if items is not None else queries())
    ranks: list[int | None] = []
    for item in items:
        ranking = await ranked_files(session, store_id, item.query, mode, embedder)
        ranks.append(rank_of(ranking, file_ids[item.doc]))
    result: dict[str, Any] = {"mode": mode, **scores(ranks)}
    for kind in sorted({item.kind for item in items}):
        result[kind] = scores([r for r, item in zip(ranks, items, strict=True)
                               if item.kind == kind])
    result["queries"] = [{"query": item.query, "doc": item.doc, "kind": item.kind, "rank": r}
                         for r, item in zip(ranks, items, strict=True)]
    return result
