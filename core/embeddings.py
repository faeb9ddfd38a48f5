"""Client for an OpenAI-compatible `/embeddings` endpoint.

Stateless (one short-lived HTTP client per call) so both the worker's
activities and the API's search endpoint can hold one without a lifecycle.
Provider retries are off: Temporal retries ingestion, and a failed query
embedding degrades search to full-text instead of failing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from core.settings import Settings

logger = logging.getLogger(__name__)
BATCH_SIZE = 64
_warned = False


class EmbeddingError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Embedder:
    base_url: str
    model: str
    api_key: str | None = None
    timeout_seconds: float = 60.0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; batched to keep request bodies small."""
        vectors: list[list[float]] = []
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(timeout=self.timeout_seconds, headers=headers) as http:
            for start in range(0, len(texts), BATCH_SIZE):
                vectors += await self._batch(http, texts[start:start + BATCH_SIZE])
        return vectors

    async def _batch(self, http: httpx.AsyncClient, texts: list[str]) -> list[list[float]]:
        url = self.base_url.rstrip("/") + "/embeddings"
        try:
            response = await http.post(url, json={"model": self.model, "input": texts})
        except httpx.HTTPError as error:
            raise EmbeddingError(f"embeddings request failed: {error!r}", True) from None
        if response.status_code >= 400:
            retryable = response.status_code == 429 or response.status_code >= 500
            raise EmbeddingError(
                f"embeddings endpoint answered {response.status_code}: {response.text[:300]}",
                retryable)
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as error:
            raise EmbeddingError(f"malformed embeddings response: {error!r}", True) from None
        if len(vectors) != len(texts):
            raise EmbeddingError("embeddings response has the wrong number of vectors", True)
        return vectors


def embedder_from_settings(settings: Settings) -> Embedder | None:
    """The configured embedder, or None (full-text search only; said once per process)."""
    global _warned
    if not settings.embeddings_url:
        if not _warned:
            _warned = True
            logger.warning("EMBEDDINGS_URL is not set: file_search stores no embeddings and "
                           "searches full-text only")
        return None
    return Embedder(settings.embeddings_url, settings.embeddings_model,
                    settings.embeddings_api_key.get_secret_value() or None,
                    settings.embeddings_timeout_seconds)
