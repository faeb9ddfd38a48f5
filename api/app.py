"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client

from api.auth import auth_required, authenticate, warn_if_open
from api.body_limit import BodyLimitMiddleware, BodyTooLarge
from api.errors import error_body, install_error_handlers
from api.fast_lane import FastLaneMiddleware
from api.metrics import MetricsMiddleware
from api.metrics import router as metrics_router
from api.routers import assistants, health, messages, runs, steps, threads
from api.routers.files import router as files_router
from api.routers.vector_store_files import router as vector_store_files_router
from api.routers.vector_stores import router as vector_stores_router
from core.db import create_engine, create_sessionmaker
from core.events import RunEvents
from core.rawdb import RawPool
from core.redis_client import create_redis
from core.settings import Settings, get_settings
from core.storage import ObjectStorage
from core.tracing import instrument_app, temporal_interceptors

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# Resource routers, each served under `/v1` and bare (the original project's
# examples use `baseURL: 'http://localhost:3000'` with no /v1).
RESOURCE_ROUTERS: list[APIRouter] = [
    assistants.router, runs.router, threads.router, messages.router, steps.router,
    files_router, vector_stores_router, vector_store_files_router,
]


def create_app(settings: Settings | None = None, bind_host: str | None = None,
               tracer_provider: TracerProvider | None = None) -> FastAPI:
    """`bind_host` is the address the server listens on (`assistants api --host`); with
    AUTH_MODE=auto it decides whether API keys are required (None: in-process, loopback).
    `tracer_provider` (core/tracing.py) turns on OpenTelemetry spans; None: no tracing."""
    settings = settings or get_settings()
    require_keys = auth_required(settings, bind_host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = create_sessionmaker(engine)
        app.state.raw_db = RawPool(engine)  # the hot paths' raw connections
        await app.state.raw_db.open()
        # Two pools: commands redis-py may re-send, and those it must not (appends, the
        # stream relay's reads); see core/redis_client.py.
        app.state.redis = create_redis(settings.redis_url)
        unretried = create_redis(settings.redis_url, retry=False)
        app.state.events = RunEvents(app.state.redis, unretried)
        app.state.storage = ObjectStorage(settings)
        # lazy: the API starts (and /health says what is missing) even while
        # Temporal is still coming up; the first call connects.
        app.state.temporal = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace, lazy=True,
            interceptors=temporal_interceptors(tracer_provider),
        )
        warn_if_open(require_keys, settings, bind_host)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await unretried.aclose()
            await app.state.raw_db.close()
            await engine.dispose()

    app = FastAPI(
        title="Durable Assistants API",
        version="2.0.0",
        summary="OpenAI Assistants API v2, every run a durable Temporal workflow.",
        lifespan=lifespan,
    )
    app.state.auth_required = require_keys
    install_error_handlers(app)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), code="request_too_large"),
                            status_code=413, headers={"Connection": "close"})

    # Innermost: the polled reads it serves are timed and counted like any route.
    app.add_middleware(FastLaneMiddleware)
    # Added before the metrics middleware, so it runs inside it: 413s are counted too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes,
                       max_upload_bytes=settings.max_file_bytes)
    app.add_middleware(MetricsMiddleware)
    # /health stays open: load balancers and `assistants up` probe it without a key.
    app.include_router(health.router)
    # /metrics is behind the same check as the API: open when the API is (loopback),
    # otherwise Prometheus scrapes with a key (`authorization: {credentials: sk-proj-...}`),
    # since run counts span every project.
    auth = [Depends(authenticate)]
    app.include_router(metrics_router, dependencies=auth)
    for router in RESOURCE_ROUTERS:
        app.include_router(router, prefix="/v1", dependencies=auth)
        app.include_router(router, include_in_schema=False, dependencies=auth)
    instrument_app(app, tracer_provider)
    return app
