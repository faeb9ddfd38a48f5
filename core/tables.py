"""Database tables: Postgres is the durable record of every object the API returns.

Each table has a text primary key (the prefixed OpenAI id) and a `seq`
identity column: list endpoints paginate on `seq`, because `created_at` is in
whole seconds and collides.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Identity, Index, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSON = dict[str, Any]

# Statuses in which a run holds its thread: no new run and no new message.
ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_RUN_STATUSES = ("cancelled", "failed", "completed", "incomplete", "expired")


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


def _fk(target: str, nullable: bool = False) -> Any:
    return Field(
        sa_column=Column(
            Text, ForeignKey(target, ondelete="CASCADE"), nullable=nullable
        )
    )


class AssistantRow(SQLModel, table=True):
    __tablename__ = "assistants"

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
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

    id: str = Field(primary_key=True)
    seq: int | None = _seq()
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


metadata = SQLModel.metadata
