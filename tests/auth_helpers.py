"""Shared by the auth tests: apps in a given AUTH_MODE, and keys made the CLI's way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from api.app import create_app
from core.api_keys import create_key
from core.db import create_engine, create_sessionmaker
from core.settings import Settings


@asynccontextmanager
async def serve(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app built from `settings` + `overrides`, lifespan entered, behind an ASGI client."""
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def new_key(settings: Settings, project: str, name: str | None = None) -> tuple[str, str]:
    """(key id, secret), through core.api_keys exactly as `assistants keys create` does."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            made = await create_key(session, project, name)
            return made.row.id, made.secret
    finally:
        await engine.dispose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None,
                 contains: str = "") -> dict[str, Any]:
    """The one error shape, with `status`, `code` and a message containing `contains`."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    assert contains in error["message"], error
    return error
