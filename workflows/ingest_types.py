"""What crosses the ingestion workflow boundary: ids and outcomes, never file content."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class IngestInput:
    vector_store_id: str
    file_id: str
    # The attempt this workflow serves; a newer attempt (file re-added) wins.
    ingest_id: str


@dataclass
class IngestResult:
    # "completed", "failed", or "abandoned" (the file was removed, cancelled
    # or re-added while we worked: nothing was written).
    status: str
    chunks: int = 0


@dataclass
class FailIngestInput:
    vector_store_id: str
    file_id: str
    ingest_id: str
    last_error: dict[str, Any]
