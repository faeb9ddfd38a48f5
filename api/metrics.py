"""GET /metrics (Prometheus text format) and the middleware that times every request.

- `assistants_http_requests_total` / `assistants_http_request_duration_seconds`: by
  method, route *template* (`/v1/threads/{thread_id}/runs`, never the raw path, so ids
  do not explode the label set; `<unmatched>` for 404s outside any route) and status.
- `assistants_runs`: runs by status, one `GROUP BY` over the runs table per scrape.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.tables import ACTIVE_RUN_STATUSES, TERMINAL_RUN_STATUSES

HTTP_REQUESTS = Counter(
    "assistants_http_requests", "HTTP requests served, by route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "assistants_http_request_duration_seconds",
    "HTTP request latency (to the end of the response body), by route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RUNS = Gauge("assistants_runs", "Runs in the database, by status.", ["status"])

logger = logging.getLogger(__name__)

UNMATCHED = "<unmatched>"
RUN_STATUSES = (*ACTIVE_RUN_STATUSES, *TERMINAL_RUN_STATUSES)

router = APIRouter(tags=["metrics"])


def route_template(scope: Scope) -> str:
    """The matched route's path template, with the prefix it was included under.

    The router leaves the matched route in the (shared) scope. Its `path` may lack the
    include prefix (FastAPI can share one route object between `/v1` and bare paths), so
    the prefix is taken from the request path: the segments before the template's own.
    """
    template = getattr(scope.get("route"), "path", None)
    if not template:
        return UNMATCHED
    own = template.strip("/").split("/")
    actual = scope["path"].strip("/").split("/")
    if ":path}" in template or len(actual) < len(own):
        return str(template)
    prefix = actual[: len(actual) - len(own)]
    return "/" + "/".join([*prefix, *own]).strip("/")


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app raises before it responds
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            labels = (scope["method"], route_template(scope), str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - start)


async def _refresh_run_counts(request: Request) -> None:
    async with request.app.state.engine.connect() as connection:
        rows = (await connection.execute(
            text("SELECT status, count(*) FROM runs GROUP BY status"))).all()
    counts: dict[str, Any] = dict.fromkeys(RUN_STATUSES, 0)
    counts.update({status: count for status, count in rows})
    RUNS.clear()  # a status no run has any more must not keep its old value
    for status, count in counts.items():
        RUNS.labels(status).set(count)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    try:
        await _refresh_run_counts(request)
    except Exception as exc:  # the HTTP metrics are still worth serving
        logger.warning("metrics: cannot count runs: %s", type(exc).__name__)
        RUNS.clear()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
