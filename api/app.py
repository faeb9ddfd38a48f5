"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import APIRouter, FastAPI
from temporalio.client import Client

from api.errors import install_error_handlers
from api.routers import assistants, health, messages, runs, steps, threads
from core.db import create_engine, create_sessionmaker
from core.events import RunEvents
from core.settings import Settings, get_settings
from core.storage import ObjectStorage

# Resource routers, each served under `/v1` and bare (the original project's
# examples use `baseURL: 'http://localhost:3000'` with no /v1).
RESOURCE_ROUTERS: list[APIRouter] = [
    assistants.router, runs.router, threads.router, messages.router, steps.router,
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = create_sessionmaker(engine)
        app.state.redis = redis.from_url(settings.redis_url)
        app.state.events = RunEvents(app.state.redis)
        app.state.storage = ObjectStorage(settings)
        # lazy: the API starts (and /health says what is missing) even while
        # Temporal is still coming up; the first call connects.
        app.state.temporal = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace, lazy=True
        )
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Durable Assistants API",
        version="2.0.0",
        summary="OpenAI Assistants API v2, every run a durable Temporal workflow.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    for router in RESOURCE_ROUTERS:
        app.include_router(router, prefix="/v1")
        app.include_router(router, include_in_schema=False)
    return app
