"""Activity metrics for the worker: a Temporal interceptor feeding Prometheus.

- `assistants_activity_duration_seconds{activity, outcome}`: every attempt's latency;
  outcome is `completed`, `failed` or `cancelled`.
- `assistants_activity_retries_total{activity}`: attempts after the first, counted when
  the retry starts: Temporal's retries, or the workflow's own for an activity whose input
  carries an `attempt` (the model turn, a local activity retried by the workflow).

`serve_metrics(port)` exposes the default registry over HTTP (WORKER_METRICS_PORT).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

ACTIVITY_LATENCY = Histogram(
    "assistants_activity_duration_seconds",
    "Temporal activity attempt latency, by activity type and outcome.",
    ["activity", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
ACTIVITY_RETRIES = Counter(
    "assistants_activity_retries", "Temporal activity attempts after the first, by activity.",
    ["activity"],
)


class _ActivityMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        attempt = max(info.attempt, getattr(input.args[0], "attempt", 1) if input.args else 1)
        if attempt > 1:
            ACTIVITY_RETRIES.labels(info.activity_type).inc()
        outcome = "failed"
        start = time.perf_counter()
        try:
            result = await super().execute_activity(input)
            outcome = "completed"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            ACTIVITY_LATENCY.labels(info.activity_type, outcome).observe(
                time.perf_counter() - start)


class ActivityMetricsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetrics(next)


def serve_metrics(port: int) -> Any:
    """Serve /metrics on `port` (all interfaces) from a daemon thread; returns the server."""
    server, _thread = start_http_server(port)
    return server
