"""API-key authentication, the per-key rate limit, and the project every request acts for.

`authenticate` is applied when the resource routers are included (api/app.py), so
no route can forget it; routes that need the project take `ProjectDep`, which is
the same dependency (FastAPI runs it once per request and caches the result).
"""

from __future__ import annotations

import ipaddress
import logging
import time

from fastapi import Request

from api.errors import ApiError
from core.api_keys import find_active_key, mask_key
from core.settings import Settings
from core.tables import DEFAULT_PROJECT

logger = logging.getLogger(__name__)

# OpenAI's wording, with our way of getting a key instead of their dashboard.
MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can create one "
    "with `assistants keys create --project NAME`."
)
INCORRECT_KEY = (
    "Incorrect API key provided: {masked}. You can create a key with "
    "`assistants keys create --project NAME` and list yours with `assistants keys list`."
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name we cannot vouch for (or "0.0.0.0"): assume reachable


def auth_required(settings: Settings, bind_host: str | None) -> bool:
    """AUTH_MODE resolved for this process.

    `bind_host` None means no socket (an in-process ASGI app, as in tests): loopback.
    Deployments that start the app some other way than `assistants api`/`up` (e.g.
    `uvicorn --factory`) cannot tell us their host and should set AUTH_MODE explicitly.
    """
    if settings.auth_mode != "auto":
        return settings.auth_mode == "required"
    return bind_host is not None and not is_loopback(bind_host)


def warn_if_open(required: bool, settings: Settings, bind_host: str | None) -> None:
    if required:
        return
    why = ("AUTH_MODE=open" if settings.auth_mode == "open"
           else f"AUTH_MODE=auto and the API binds loopback host {bind_host or '(in-process)'}")
    logger.warning(
        "!!! AUTHENTICATION IS OFF (%s): API keys are not checked and every request acts "
        "as project %r. Set AUTH_MODE=required before exposing this API. !!!",
        why, DEFAULT_PROJECT)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _check_rate(request: Request, key_id: str, prefix: str) -> None:
    """A fixed one-minute window per key in Redis.

    The counter's name carries the window number, so re-arming its expiry on every
    hit is harmless and works on any Redis version (no EXPIRE NX).
    """
    limit: int = request.app.state.settings.rate_limit_per_minute
    if limit <= 0:
        return
    now = time.time()
    window = int(now // 60)
    counter = f"ratelimit:{key_id}:{window}"
    try:
        pipe = request.app.state.redis.pipeline(transaction=False)
        pipe.incr(counter)
        pipe.expire(counter, 61)
        count, _ = await pipe.execute()
    except Exception as error:
        # Fail open: the limit guards against abuse, it is not authentication, and
        # an unreachable Redis already fails the routes that need it.
        logger.warning("rate limit not checked (redis: %s)", type(error).__name__)
        return
    if int(count) > limit:
        retry_after = max(1, (window + 1) * 60 - int(now))
        raise ApiError(
            429, f"Rate limit reached for requests on API key {prefix}****: limit {limit} / "
                 f"min. Please try again in {retry_after}s.",
            type="requests", code="rate_limit_exceeded",
            headers={"Retry-After": str(retry_after)})


async def authenticate(request: Request) -> str:
    """The caller's project id (also left on `request.state.project_id`), or a 401/429."""
    if not request.app.state.auth_required:
        # Open mode: any Authorization header (the SDKs' api_key="EMPTY") is ignored.
        request.state.project_id = DEFAULT_PROJECT
        return DEFAULT_PROJECT
    presented = _bearer(request)
    if presented is None:
        raise ApiError(401, MISSING_KEY, headers=CHALLENGE)
    key = await find_active_key(request.app.state.raw_db, presented)
    if key is None:
        raise ApiError(401, INCORRECT_KEY.format(masked=mask_key(presented)),
                       code="invalid_api_key", headers=CHALLENGE)
    await _check_rate(request, key.id, key.prefix)
    request.state.project_id = key.project_id
    request.state.api_key_id = key.id
    return key.project_id
