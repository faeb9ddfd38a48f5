"""Projects and their API keys: the tables, and the operations the CLI, the API and tests share.

A key is shown once, at creation. The database keeps its SHA-256 and a short
visible prefix (for `keys list`), never the key: a leaked database dump holds
nothing that authenticates.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from psycopg import AsyncConnection
from sqlalchemy import BigInteger, Column, ForeignKey, Identity, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from core import ids
from core.rawdb import RawPool

KEY_PREFIX = "sk-proj-"
KEY_ID_PREFIX = "key"
# Characters of the key kept in clear: "sk-proj-" and four random ones, enough to
# tell keys apart in a list, far too few to guess the remaining 256 bits.
VISIBLE_CHARS = len(KEY_PREFIX) + 4
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ProjectRow(SQLModel, table=True):
    __tablename__ = "projects"

    id: str = Field(primary_key=True)  # the name given to `keys create --project`
    seq: int | None = Field(default=None, sa_column=Column(
        BigInteger, Identity(always=True), unique=True, nullable=False))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True)
    seq: int | None = Field(default=None, sa_column=Column(
        BigInteger, Identity(always=True), unique=True, nullable=False))
    project_id: str = Field(sa_column=Column(
        Text, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True))
    name: str | None = None
    prefix: str
    key_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


@dataclass(frozen=True)
class NewKey:
    row: ApiKeyRow
    secret: str  # the only copy; the caller prints it once


def hash_key(secret: str) -> str:
    # A plain digest (no salt, no slow KDF) is enough: keys are 256 random bits,
    # not passwords, and the lookup must stay one indexed equality per request.
    return hashlib.sha256(secret.encode()).hexdigest()


def mask_key(presented: str) -> str:
    """How a rejected key is echoed: never more than its public prefix and last four."""
    if presented.startswith(KEY_PREFIX) and len(presented) > len(KEY_PREFIX) + 8:
        return f"{KEY_PREFIX}****{presented[-4:]}"
    if len(presented) >= 12:
        return f"{presented[:3]}****{presented[-4:]}"
    return "****"


async def create_key(session: AsyncSession, project: str, name: str | None = None) -> NewKey:
    """A new key for `project` (created if new); commits."""
    if not PROJECT_NAME.fullmatch(project):
        raise ValueError(f"invalid project name {project!r}: use 1-64 letters, digits, "
                         "'_', '.' or '-', starting with a letter or digit")
    now = int(time.time())
    if await session.get(ProjectRow, project) is None:
        session.add(ProjectRow(id=project, created_at=now))
        await session.flush()
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKeyRow(id=ids.new_id(KEY_ID_PREFIX), project_id=project, name=name,
                    prefix=secret[:VISIBLE_CHARS], key_hash=hash_key(secret), created_at=now)
    session.add(row)
    await session.commit()
    return NewKey(row, secret)


async def list_keys(session: AsyncSession) -> list[ApiKeyRow]:
    return list((await session.scalars(select(ApiKeyRow).order_by(col(ApiKeyRow.seq)))).all())


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKeyRow | None:
    """Revoke `key_id` (idempotent); None if there is no such key. Commits."""
    row = await session.get(ApiKeyRow, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = int(time.time())
        session.add(row)
        await session.commit()
    return row


class ActiveKey(NamedTuple):
    id: str
    project_id: str
    prefix: str


# One statement on a raw connection (core/rawdb.py), not the ORM: every request with a
# key runs it, and through an AsyncSession it cost ~2 ms of CPU.
_ACTIVE_KEY_SQL = ("SELECT id, project_id, prefix FROM api_keys "
                   "WHERE key_hash = %s AND revoked_at IS NULL LIMIT 1")


async def find_active_key(pool: RawPool, secret: str) -> ActiveKey | None:
    """The active (unrevoked) key `secret`, if there is one."""
    async def query(conn: AsyncConnection[Any]) -> ActiveKey | None:
        cursor = await conn.execute(_ACTIVE_KEY_SQL, (hash_key(secret),))
        row = await cursor.fetchone()
        return None if row is None else ActiveKey(str(row[0]), str(row[1]), str(row[2]))

    return await pool.read(query)
