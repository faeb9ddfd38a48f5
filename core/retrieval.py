"""Hybrid search over vector-store chunks: pgvector cosine + Postgres full-text, fused by RRF.

Pure database + embedding work, no HTTP layer: the `/vector_stores/{id}/search`
endpoint and the run's file_search activity both call `search`.

Scoring. Each retriever ranks its candidates; a chunk's fused score is
sum(1 / (RRF_K + rank)) over the retrievers that found it, divided by the best
possible sum (rank 1 in every retriever that took part), so scores lie in
(0, 1]: 1.0 means "first for every retriever", and a chunk only one of two
retrievers found scores at most 0.5. `score_threshold` applies to that score.
A retriever takes part when it can: full-text when the query has any
searchable word, vectors when an embedder is given and chunks in scope carry
embeddings of its model (so a store ingested without embeddings, or with
another model, is still found by full-text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlmodel import col

from core.embeddings import Embedder, EmbeddingError
from core.tables import ChunkRow, FileRow, VectorStoreFileRow

logger = logging.getLogger(__name__)
RRF_K = 60
MIN_CANDIDATES = 50
MAX_QUERY_TERMS = 64
_WORD = re.compile(r"\w+", re.UNICODE)
_RANGE_OPS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}


@dataclass(frozen=True)
class SearchResult:
    vector_store_id: str
    file_id: str
    filename: str
    chunk_index: int
    text: str
    score: float
    attributes: dict[str, str | float | bool] | None


async def search(
    session: AsyncSession,
    vector_store_ids: Sequence[str],
    query: str | Sequence[str],
    max_num_results: int = 10,
    score_threshold: float = 0.0,
    filters: Mapping[str, Any] | None = None,
    *,
    embedder: Embedder | None = None,
) -> list[SearchResult]:
    """The best chunks of completed files in `vector_store_ids`, best first.

    `filters` is OpenAI's ComparisonFilter/CompoundFilter as plain JSON, on
    the files' attributes (ValueError if malformed). Without `embedder` the
    search is full-text only.
    """
    queries = [query] if isinstance(query, str) else list(query)
    text = " ".join(q for q in queries if q.strip())
    if not vector_store_ids or not text:
        return []
    scope = [col(ChunkRow.vector_store_id).in_(list(vector_store_ids)),
             col(VectorStoreFileRow.status) == "completed"]
    if filters:
        scope.append(filter_clause(filters))
    candidates = max(MIN_CANDIDATES, 4 * max_num_results)

    rankings: list[list[int]] = []
    terms = _query_terms(text)
    if terms:
        tsquery = func.to_tsquery("english", " | ".join(terms))
        rank = func.ts_rank(col(ChunkRow.tsv), tsquery)
        rows = await session.execute(
            _scoped(select(col(ChunkRow.id)), scope)
            .where(col(ChunkRow.tsv).op("@@")(tsquery))
            .order_by(rank.desc(), col(ChunkRow.id)).limit(candidates))
        rankings.append([row[0] for row in rows])
    vector = await _embed_query(embedder, text)
    if embedder is not None and vector is not None:
        distance = col(ChunkRow.embedding).cosine_distance(vector)  # type: ignore[attr-defined]
        rows = await session.execute(
            _scoped(select(col(ChunkRow.id)), scope)
            .where(col(ChunkRow.embedding_model) == embedder.model,
                   func.vector_dims(col(ChunkRow.embedding)) == len(vector))
            .order_by(distance, col(ChunkRow.id)).limit(candidates))
        found = [row[0] for row in rows]
        if found:  # no embedded chunks in scope: vectors took no part
            rankings.append(found)
    fused = fuse(rankings)
    best = [(chunk_id, score) for chunk_id, score in fused if score >= score_threshold]
    return await _load(session, best[:max_num_results])


def fuse(rankings: list[list[int]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion, normalised to (0, 1]; ties keep the earlier id first."""
    if not rankings:
        return []
    scores: dict[int, float] = {}
    for ranking in rankings:
        for position, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + position)
    best_possible = len(rankings) / (RRF_K + 1)
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [(chunk_id, round(score / best_possible, 6)) for chunk_id, score in ordered]


def filter_clause(spec: Mapping[str, Any]) -> ColumnElement[bool]:
    """OpenAI's attribute filter as SQL over `vector_store_files.attributes` (JSONB).

    A file without the key never matches eq/in/gt..., and always matches ne/nin.
    """
    kind = spec.get("type")
    # ValueError (a 400 at the endpoint) for any shape the schema should have refused: a
    # `type` that is no string would reach a dict lookup (TypeError, a 500).
    if not isinstance(kind, str):
        raise ValueError("a filter's 'type' must be a string")
    if kind in ("and", "or"):
        items = spec.get("filters") or []
        if not all(isinstance(item, Mapping) for item in items):
            raise ValueError("a compound filter's 'filters' must be filter objects")
        parts = [filter_clause(item) for item in items]
        if kind == "and":
            return and_(true(), *parts)
        return or_(false(), *parts)
    key, value = spec.get("key"), spec.get("value")
    if not isinstance(key, str):
        raise ValueError("a comparison filter needs a string 'key'")
    attributes = col(VectorStoreFileRow.attributes)
    field = attributes.op("->")(key)
    present = field.is_not(None)
    if kind in ("eq", "ne"):
        same = field == literal(value, JSONB)
        return and_(present, same) if kind == "eq" else or_(not_(present), not_(same))
    if kind in ("in", "nin"):
        if not isinstance(value, list):
            raise ValueError(f"'{kind}' filters need an array value")
        member = literal(value, JSONB).op("@>")(func.jsonb_build_array(field))
        return and_(present, member) if kind == "in" else or_(not_(present), not_(member))
    if kind in _RANGE_OPS:
        operator = _RANGE_OPS[kind]
        raw = attributes.op("->>")(key)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"'{kind}' filters need a number or string value")
        if isinstance(value, str):
            compared = getattr(raw, operator)(value)
            return and_(func.jsonb_typeof(field) == "string", compared)
        compared = getattr(cast(raw, Numeric), operator)(value)
        # CASE, not AND: Postgres may evaluate AND's operands in any order, and
        # casting a string attribute to numeric would raise.
        return case((func.jsonb_typeof(field) == "number", compared), else_=false())
    raise ValueError(f"unknown filter type '{kind}'")


def _scoped(query: Select[Any], scope: list[ColumnElement[bool]]) -> Select[Any]:
    return query.join(VectorStoreFileRow, and_(
        col(VectorStoreFileRow.vector_store_id) == col(ChunkRow.vector_store_id),
        col(VectorStoreFileRow.id) == col(ChunkRow.file_id),
    )).where(*scope)


def _query_terms(text: str) -> list[str]:
    """Distinct words, OR-ed: a chunk matching more (and rarer) words ranks higher."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        seen.setdefault(word.strip("_"), None)
    return [word for word in seen if word][:MAX_QUERY_TERMS]


async def _embed_query(embedder: Embedder | None, text: str) -> list[float] | None:
    if embedder is None:
        return None
    try:
        return (await embedder.embed([text]))[0]
    except EmbeddingError as error:
        # Degrade, do not fail: full-text still answers.
        logger.warning("query embedding failed, searching full-text only: %s", error.message)
        return None


async def _load(session: AsyncSession, scored: list[tuple[int, float]]) -> list[SearchResult]:
    if not scored:
        return []
    rows = await session.execute(
        select(col(ChunkRow.id), col(ChunkRow.vector_store_id), col(ChunkRow.file_id),
               col(ChunkRow.chunk_index), col(ChunkRow.text), col(FileRow.filename),
               col(VectorStoreFileRow.attributes))
        .join(FileRow, col(FileRow.id) == col(ChunkRow.file_id))
        .join(VectorStoreFileRow, and_(
            col(VectorStoreFileRow.vector_store_id) == col(ChunkRow.vector_store_id),
            col(VectorStoreFileRow.id) == col(ChunkRow.file_id)))
        .where(col(ChunkRow.id).in_([chunk_id for chunk_id, _ in scored])))
    by_id = {row[0]: row for row in rows}
    return [
        SearchResult(vector_store_id=row[1], file_id=row[2], chunk_index=row[3], text=row[4],
                     filename=row[5], attributes=row[6], score=score)
        for chunk_id, score in scored if (row := by_id.get(chunk_id)) is not None
    ]
