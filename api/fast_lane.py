"""A fast lane for the polled reads, in front of FastAPI's routing.

Clients poll `GET /threads/{thread_id}/runs/{run_id}` and list messages; on this 2-core
box FastAPI's routing and dependency solving for such a route cost ~0.3 ms of CPU per
request, as much as the SQL statement behind it. This pure-ASGI middleware serves those
GETs (with `/v1` or bare) itself: same authentication (api/auth.py), same statement and
bytes (api/fast_reads.py), same error envelopes (api/errors.py), same metrics labels.

It only takes requests it can answer exactly as the routes would; anything else (an id
without its prefix, a query parameter it does not know, a repeated or empty one, a limit
out of range, a root_path) goes on to the app untouched, which answers it, errors
included, in the one canonical way. The routes stay in the app for /openapi.json and
for whatever falls through.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api import fast_reads
from api.auth import authenticate
from api.errors import handled_response
from api.pagination import ListParams
from api.routers import messages, runs
from core import ids
from core.rawdb import RawPool

Handler = Callable[[RawPool, str], Awaitable[Response]]
_LIST_KEYS = frozenset({"limit", "order", "after", "before"})


def _list_params(query: bytes, extra: frozenset[str] = frozenset()) -> dict[str, str] | None:
    """The list query as plain strings, or None unless every parameter is one the route
    takes, given once, non-empty and (limit, order) valid."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    values = dict(pairs)
    if len(values) != len(pairs) or not values.keys() <= _LIST_KEYS | extra:
        return None
    if not all(values.values()):
        return None
    limit = values.get("limit", "20")
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100):
        return None
    if values.get("order", "desc") not in ("asc", "desc"):
        return None
    return values


def _to_params(values: dict[str, str]) -> ListParams:
    return ListParams(limit=int(values.get("limit", "20")),
                      order="asc" if values.get("order") == "asc" else "desc",
                      after=values.get("after"), before=values.get("before"))


@cache
def _route(endpoint: Callable[..., Any]) -> BaseRoute:
    """The route object FastAPI leaves in `scope["route"]` (api/metrics.py labels by it)."""
    return next(r for r in [*runs.router.routes, *messages.router.routes]
                if getattr(r, "endpoint", None) is endpoint)


# /v1/threads/{thread_id}/runs/{run_id}, etc.: the routes' own paths, with or without /v1.
_RUN = re.compile(r"(?:/v1)?/threads/([^/]+)/runs/([^/]+)")
_RUNS = re.compile(r"(?:/v1)?/threads/([^/]+)/runs")
_MESSAGE = re.compile(r"(?:/v1)?/threads/([^/]+)/messages/([^/]+)")
_MESSAGES = re.compile(r"(?:/v1)?/threads/([^/]+)/messages")


def _match(path: str, query: bytes) -> tuple[Handler, BaseRoute] | None:
    """The handler for a GET on `path`, or None to leave the request to the app."""
    if match := _RUN.fullmatch(path):
        thread_id, run_id = match.groups()
        if not (ids.has_prefix(thread_id, ids.THREAD) and ids.has_prefix(run_id, ids.RUN)):
            return None
        if query:
            return None
        return (lambda pool, project: fast_reads.run_response(pool, project, thread_id, run_id),
                _route(runs.retrieve_run))
    if match := _MESSAGES.fullmatch(path):
        thread_id = match.group(1)
        values = _list_params(query, frozenset({"run_id"}))
        if values is None or not ids.has_prefix(thread_id, ids.THREAD):
            return None
        params, run_id = _to_params(values), values.get("run_id")
        return (lambda pool, project: fast_reads.messages_response(
            pool, project, thread_id, params, run_id),
            _route(messages.list_messages))
    if match := _MESSAGE.fullmatch(path):
        thread_id, message_id = match.groups()
        if query or not (ids.has_prefix(thread_id, ids.THREAD)
                         and ids.has_prefix(message_id, ids.MESSAGE)):
            return None
        return (lambda pool, project: fast_reads.message_response(
            pool, project, thread_id, message_id),
            _route(messages.retrieve_message))
    if match := _RUNS.fullmatch(path):
        thread_id = match.group(1)
        values = _list_params(query)
        if values is None or not ids.has_prefix(thread_id, ids.THREAD):
            return None
        params = _to_params(values)
        return (lambda pool, project: fast_reads.runs_response(pool, project, thread_id, params),
                _route(runs.list_runs))
    return None


class FastLaneMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            found = _match(scope["path"], scope["query_string"])
        if found is None:
            await self.app(scope, receive, send)
            return
        handler, route = found
        scope["route"] = route
        request = Request(scope, receive)
        try:
            project = await authenticate(request)
            response = await handler(request.app.state.raw_db, project)
        except Exception as exc:
            handled = handled_response(exc)
            if handled is None:
                raise  # the server error middleware answers with a 500 envelope
            response = handled
        await response(scope, receive, send)
