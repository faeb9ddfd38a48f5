"""The one place Redis clients are built: the API's and the worker's.

Every option is explicit: redis-py changes its defaults between releases (8.0 gave
`redis.asyncio.Redis` a 5 s socket timeout and a pool capped at 100 connections, and every
stream died after 5 s of model silence), and the right values follow from how we use Redis.

Two kinds of client, because not every command may run twice:

- `create_redis(url)`: redis-py retries a command after a connection error or timeout, with
  backoff. For commands that can safely run twice: reads (GET, XREVRANGE), PING, DEL,
  EXPIRE, and the rate limiter's INCR (a request counted twice after a Redis hiccup errs
  toward limiting).
- `create_redis(url, retry=False)`: nothing is re-sent by redis-py. For XADD and APPEND: when
  the connection fails after a command went out, Redis may have run it, and sending it again
  would publish an event (or append text) twice. `core/events.py` retries those only after
  errors that prove the command never reached Redis (`never_sent`). The relay's XREAD uses
  it too: after a reconnection the relay first checks that Redis still holds the stream it
  was reading (a restarted Redis may have lost it), which a silent retry would skip.
"""

from __future__ import annotations

import socket
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# The longest BLOCK any command of ours asks Redis for (the stream relay's XREAD). A
# blocked read is a quiet socket by design, so the socket timeout must be well above it:
# equal to it (redis-py 8's default 5 s against the relay's old 5 s block), every quiet
# stream read as a dead connection.
MAX_BLOCK_SECONDS = 10.0
# A reply slower than this means Redis or the network is in trouble: the command fails (and
# is retried, or not, as above). Block time plus 10 s for a busy Redis or a starved host.
SOCKET_TIMEOUT_SECONDS = MAX_BLOCK_SECONDS + 10.0
CONNECT_TIMEOUT_SECONDS = 5.0
# A connection idle this long is PINGed before its next command: one dropped meanwhile (a
# Redis restart, an idle-timeout on a proxy or NAT) fails on the PING, not on our command.
HEALTH_CHECK_SECONDS = 15
# TCP keep-alive on every connection: a peer that vanished without closing (a host gone, a
# NAT that forgot us) is noticed after ~45 s (30 s idle, 3 probes 5 s apart) instead of never.
_KEEPALIVE_OPTIONS = {getattr(socket, name): value for name, value in (
    ("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)) if hasattr(socket, name)}
# One connection per open stream (each relay holds one in XREAD while it waits) plus the
# short commands. redis-py 8 caps a pool at 100 by default, which would fail the 101st
# concurrent stream of an API process with "Too many connections"; Redis' own default
# `maxclients` is 10000.
MAX_CONNECTIONS = 10_000
# Retries of the retrying client: 8 attempts after the first, backing off 0.1 s to 1 s
# (about 4 s in all), enough for a dropped connection or a quick Redis restart. Longer
# outages are for the callers: the relay retries from its cursor, Temporal retries an
# activity.
RETRIES = 8
_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 1.0


def create_redis(url: str, *, retry: bool = True) -> redis.Redis:
    """A client (with its connection pool) for `url`; see the module docstring for `retry`."""
    policy = (Retry(EqualJitterBackoff(cap=_BACKOFF_CAP_SECONDS, base=_BACKOFF_BASE_SECONDS),
                    RETRIES, supported_errors=(RedisConnectionError, RedisTimeoutError))
              if retry else Retry(NoBackoff(), 0))
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_keepalive": True,
        "socket_keepalive_options": _KEEPALIVE_OPTIONS,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": policy,
        "max_connections": MAX_CONNECTIONS,
    }
    return redis.Redis.from_url(url, **options)


def never_sent(error: BaseException) -> bool:
    """Whether `error` proves the command never reached Redis, so sending it again cannot
    run it twice: the connection was refused or the host name did not resolve (a Redis
    restarting, a failover moving its address). Anything later (a reset or timed-out
    connection, an error reply) leaves it unknown whether Redis ran it."""
    if not isinstance(error, RedisConnectionError):
        return False
    cause = error.__cause__ or error.__context__
    return isinstance(cause, ConnectionRefusedError | socket.gaierror)
