"""GET /health: 200 once every dependency answers, 503 (naming the culprit) otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 3.0


async def _check(probe: Callable[[], Awaitable[Any]]) -> str:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    state = request.app.state

    async def database() -> None:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def temporal() -> None:
        await state.temporal.service_client.check_health()

    probes = {
        "database": database,
        "redis": state.redis.ping,
        "s3": state.storage.ping,
        "temporal": temporal,
    }
    results = await asyncio.gather(*(_check(probe) for probe in probes.values()))
    components = dict(zip(probes, results, strict=True))
    healthy = all(result == "ok" for result in results)
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "components": components},
        status_code=200 if healthy else 503,
    )
