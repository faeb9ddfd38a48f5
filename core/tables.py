"""Database tables: Postgres is the durable record of every object the API returns.

Each table has a text primary key (the prefixed OpenAI id) and a `seq`
identity column: list endpoints paginate on `seq`, because `created_at` is in
whole seconds and collides.
"""

from __future__ import annotations

from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlmodel import Field, SQLModel

JSON = dict[str, Any]

# Statuses in which a run holds its thread: no new run and no new message.
ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_RUN_STATUSES = ("cancelled", "failed", "completed", "incomplete", "expired")
DEFAULT_PROJECT = "default"  # objects made before projects existed; all open-mode requests


def _seq() -> Any:
    return Field(
        sa_column=Column(BigInteger, Identity(always=True), unique=True, nullable=False),
        default=None,
    )


def _ts(nullable: bool = True) -> Any:
    # Unix seconds as BIGINT: a 32-bit column would run out in 2038.
    return Field(default=None, sa_column=Column(BigInteger, nullable=nullable))


def _json(name: str | None = None, nullable: bool = True) -> Any:
    column = Column(name, JSONB, nullable=nullable) if name else Column(JSONB, nullable=nullable)
    return Field(default=None, sa_column=column)


def _project() -> Any:
    # Only top-level objects carry it: children are scoped through their parent.
    return Field(default=DEFAULT_PROJECT, sa_column=Column(
        Text, nullable=False, server_default=DEFAULT_PROJECT))


def _fk(target: str, nullable: bool = False) -> Any:
    return Field(
        sa_column=Column(
            Text, ForeignKey(target, ondelete="CASCADE"), nullable=nullable
        )
    )


class AssistantRow(SQLModel, table=True):
    __tablename__ = "assistants"
    __table_args__ = (Index("assistants_project_seq", "project_id", "seq"),)

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    project_id: str = _project()
    created_at: int = _ts(nullable=False)
    name: str | None = None
    description: str | None = None
    model: str
    instructions: str | None = None
    tools: list[JSON] = _json(nullable=False)
    tool_resources: JSON | None = _json()
    metadata_: dict[str, str] = _json("metadata", nullable=False)
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = _json()


class ThreadRow(SQLModel, table=True):
    __tablename__ = "threads"
    __table_args__ = (Index("threads_project_seq", "project_id", "seq"),)

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    project_id: str = _project()
    created_at: int = _ts(nullable=False)
    tool_resources: JSON | None = _json()
    metadata_: dict[str, str] = _json("metadata", nullable=False)


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"
    # Lists page through one thread in seq order.
    __table_args__ = (Index("messages_thread_seq", "thread_id", "seq"),)

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    thread_id: str = _fk("threads.id")
    created_at: int = _ts(nullable=False)
    role: str
    content: list[JSON] = _json(nullable=False)
    status: str = "completed"
    incomplete_details: JSON | None = _json()
    completed_at: int | None = _ts()
    incomplete_at: int | None = _ts()
    assistant_id: str | None = None
    run_id: str | None = Field(default=None, index=True)
    attachments: list[JSON] | None = _json()
    metadata_: dict[str, str] = _json("metadata", nullable=False)


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("runs_thread_seq", "thread_id", "seq"),
        # The thread lock: at most one active run per thread, enforced by the
        # database so that two concurrent creates cannot both win.
        Index(
            "runs_one_active_per_thread",
            "thread_id",
            unique=True,
            postgresql_where=text(
                "status IN (" + ", ".join(f"'{s}'" for s in ACTIVE_RUN_STATUSES) + ")"
            ),
        ),
    )

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    thread_id: str = _fk("threads.id")
    assistant_id: str
    created_at: int = _ts(nullable=False)
    status: str
    model: str
    instructions: str | None = None
    tools: list[JSON] = _json(nullable=False)
    metadata_: dict[str, str] = _json("metadata", nullable=False)
    started_at: int | None = _ts()
    expires_at: int | None = _ts()
    cancelled_at: int | None = _ts()
    failed_at: int | None = _ts()
    completed_at: int | None = _ts()
    last_error: JSON | None = _json()
    required_action: JSON | None = _json()
    incomplete_details: JSON | None = _json()
    usage: JSON | None = _json()
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: JSON = _json(nullable=False)
    tool_choice: Any = _json(nullable=False)
    parallel_tool_calls: bool = True
    response_format: Any = _json(nullable=False)
    tool_resources: JSON | None = _json()


class RunStepRow(SQLModel, table=True):
    __tablename__ = "run_steps"
    __table_args__ = (Index("run_steps_run_seq", "run_id", "seq"),)

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    run_id: str = _fk("runs.id")
    thread_id: str
    assistant_id: str
    created_at: int = _ts(nullable=False)
    type: str
    status: str
    step_details: JSON = _json(nullable=False)
    last_error: JSON | None = _json()
    expired_at: int | None = _ts()
    cancelled_at: int | None = _ts()
    failed_at: int | None = _ts()
    completed_at: int | None = _ts()
    usage: JSON | None = _json()
    metadata_: dict[str, str] = _json("metadata", nullable=False)


# --- files and vector stores (file_search) ------------------------------------
VECTOR_STORE_FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


class FileRow(SQLModel, table=True):
    """An uploaded file; its bytes live in S3 under `storage_key`."""

    __tablename__ = "files"
    __table_args__ = (Index("files_project_seq", "project_id", "seq"),)

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    project_id: str = _project()
    created_at: int = _ts(nullable=False)
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    filename: str
    purpose: str = Field(index=True)
    content_type: str
    storage_key: str
    expires_at: int | None = _ts()


class VectorStoreRow(SQLModel, table=True):
    """A vector store. file_counts, usage_bytes and status are computed from its
    files on every read (see core/vector_stores.py), so they cannot drift."""

    __tablename__ = "vector_stores"
    __table_args__ = (Index("vector_stores_project_seq", "project_id", "seq"),)

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    project_id: str = _project()
    created_at: int = _ts(nullable=False)
    name: str = ""
    description: str | None = None
    last_active_at: int = _ts(nullable=False)
    expires_after: JSON | None = _json()
    expires_at: int | None = _ts()
    metadata_: dict[str, str] = _json("metadata", nullable=False)


class FileBatchRow(SQLModel, table=True):
    __tablename__ = "file_batches"
    __table_args__ = (Index("file_batches_store_seq", "vector_store_id", "seq"),)

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
    vector_store_id: str = _fk("vector_stores.id")
    created_at: int = _ts(nullable=False)
    # Only "in_progress" or "cancelled" is stored; "completed" is derived from
    # the batch's files once none is in progress.
    status: str = "in_progress"


class VectorStoreFileRow(SQLModel, table=True):
    """A file attached to a vector store. `id` is the file id (OpenAI's shape),
    unique per store; `ingest_id` names the current ingestion attempt, so a
    stale workflow (file re-added, batch cancelled) cannot overwrite a newer one."""

    __tablename__ = "vector_store_files"
    __table_args__ = (
        Index("vector_store_files_store_seq", "vector_store_id", "seq"),
        Index("vector_store_files_batch", "batch_id"),
    )

    vector_store_id: str = Field(sa_column=Column(
        Text, ForeignKey("vector_stores.id", ondelete="CASCADE"), primary_key=True))
    id: str = Field(sa_column=Column(
        Text, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True, index=True))
    seq: int | None = _seq()
    created_at: int = _ts(nullable=False)
    status: str = "in_progress"
    last_error: JSON | None = _json()
    usage_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    chunking_strategy: JSON = _json(nullable=False)
    attributes: JSON | None = _json()
    batch_id: str | None = Field(default=None, sa_column=Column(
        Text, ForeignKey("file_batches.id", ondelete="SET NULL"), nullable=True))
    ingest_id: str


class ChunkRow(SQLModel, table=True):
    """One chunk of a vector-store file, with its embedding and full-text vector.

    `embedding` is `vector` without fixed dimensions: stores embedded by
    different models (or none) coexist, and search compares only vectors of
    the query's model. The price is no ANN index; exact cosine search over
    the requested stores is fast enough at self-hosted scale.
    """

    __tablename__ = "chunks"
    __table_args__ = (
        ForeignKeyConstraint(["vector_store_id", "file_id"],
                             ["vector_store_files.vector_store_id", "vector_store_files.id"],
                             ondelete="CASCADE"),
        Index("chunks_store_file", "vector_store_id", "file_id", "chunk_index"),
        Index("chunks_tsv", "tsv", postgresql_using="gin"),
    )

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger, Identity(always=True), primary_key=True))
    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    token_count: int
    embedding_model: str | None = None
    embedding: list[float] | None = Field(default=None, sa_column=Column(VECTOR(), nullable=True))
    tsv: Any = Field(default=None, sa_column=Column(
        TSVECTOR, Computed("to_tsvector('english', text)", persisted=True)))


metadata = SQLModel.metadata
