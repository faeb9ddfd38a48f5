"""File objects (OpenAI's FileObject)."""

from __future__ import annotations

from typing import Any, Literal

from api.schemas.common import WireObject
from core.tables import FileRow

Purpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]


class FileObject(WireObject):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: str
    status_details: str | None


class FileDeleted(WireObject):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


def file_to_wire(row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "filename": row.filename,
        "purpose": row.purpose,
        # Stored bytes are usable at once; parsing happens per vector store.
        "status": "processed",
        "status_details": None,
    }
