"""Async database engine and sessions (psycopg 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(database_url: str, pool_size: int = 10,
                  pre_ping: bool = True) -> AsyncEngine:
    """pre_ping: an API that outlives a database restart recovers on the next request
    instead of failing once per pooled connection. The worker turns it off: the ping is a
    round trip per checkout (half of a text turn's), and an activity that meets a dead
    connection fails, is retried by Temporal and finds the pool already replaced
    (SQLAlchemy invalidates the whole pool on a disconnect)."""
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session, session.begin():
        yield session
