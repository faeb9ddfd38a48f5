"""Shared by the fast-path tests: an app of its own, with or without api/fast_lane.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from api.app import create_app
from api.fast_lane import FastLaneMiddleware
from core.settings import Settings


@asynccontextmanager
async def serve_app(settings: Settings, fast_lane: bool = True,
                    **overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """`settings` + `overrides`, lifespan entered, behind an ASGI client; `fast_lane=False`
    leaves every request to FastAPI's routes (the canonical answers)."""
    app = create_app(settings.model_copy(update=overrides))
    if not fast_lane:  # before the first request builds the middleware stack
        # `object`: Starlette types `Middleware.cls` as a factory protocol a class never matches.
        fast_lane_cls: object = FastLaneMiddleware
        app.user_middleware = [m for m in app.user_middleware if m.cls is not fast_lane_cls]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http
