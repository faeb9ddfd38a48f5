"""Request-scoped dependencies; every client lives on `app.state` (owned by the lifespan).

All `async def`, even those that only read an attribute: FastAPI runs a plain `def`
dependency in its thread pool, a thread hand-off per dependency per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.auth import authenticate
from core.embeddings import Embedder, embedder_from_settings
from core.events import RunEvents
from core.rawdb import RawPool
from core.settings import Settings
from core.storage import ObjectStorage


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def _temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def _events(request: Request) -> RunEvents:
    events: RunEvents = request.app.state.events
    return events


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _storage(request: Request) -> ObjectStorage:
    storage: ObjectStorage = request.app.state.storage
    return storage


async def _embedder(request: Request) -> Embedder | None:
    # Derived from settings (it holds no connection), so the lifespan needs no change.
    return embedder_from_settings(request.app.state.settings)


async def _raw_db(request: Request) -> RawPool:
    pool: RawPool = request.app.state.raw_db
    return pool


SessionDep = Annotated[AsyncSession, Depends(_session)]
TemporalDep = Annotated[Client, Depends(_temporal)]
SettingsDep = Annotated[Settings, Depends(_settings)]
EventsDep = Annotated[RunEvents, Depends(_events)]
StorageDep = Annotated[ObjectStorage, Depends(_storage)]
EmbedderDep = Annotated[Embedder | None, Depends(_embedder)]
RawDbDep = Annotated[RawPool, Depends(_raw_db)]
# The caller's project. The routers are included with `authenticate` as a dependency
# (api/app.py); naming it again here reuses that call's cached result.
ProjectDep = Annotated[str, Depends(authenticate)]
