"""OpenTelemetry tracing: HTTP request -> StartWorkflow -> RunWorkflow -> RunActivity, one trace.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set;
off, nothing here is imported or installed and a request costs nothing extra. On, spans go
over OTLP/HTTP (protobuf) to that collector, e.g. `http://otel-collector:4318`. The
standard OTel variables are read by the SDK from the process environment (not `.env`):
`OTEL_SERVICE_NAME` (default `assistants-api` / `assistants-worker`),
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, ...;
`OTEL_SDK_DISABLED=true` turns tracing off even with an endpoint.

Temporal's `TracingInterceptor` carries the context in workflow and activity headers, so
the API's span for `POST /v1/threads/runs` is the parent of `StartWorkflow:AssistantRun`,
whose children are `RunWorkflow:AssistantRun` and the `RunActivity:*` spans on the worker.
HTTP spans are named by route template (`POST /v1/threads/{thread_id}/runs`). No header is
recorded unless OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST asks for it, and
even then credentials (`Authorization`, API-key headers, cookies) are `[REDACTED]`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

API_SERVICE_NAME = "assistants-api"
WORKER_SERVICE_NAME = "assistants-worker"
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Never written into a span, even when request headers are captured.
SECRET_HEADERS = ["authorization", "proxy-authorization", "cookie", "set-cookie",
                  "x-api-key", "api-key", "openai-api-key", "anthropic-api-key"]
# Probes and scrapes: a span every few seconds that says nothing.
DEFAULT_EXCLUDED_URLS = "/health$,/metrics$"


def tracing_enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(var, "").strip() for var in ENDPOINT_VARS)


def configure_tracing(service_name: str) -> TracerProvider | None:
    """The process's tracer provider (also made the global one), exporting over OTLP/HTTP;
    None when tracing is off. Pass it to `create_app` / `run_worker`."""
    if not tracing_enabled():
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES; OTEL_SERVICE_NAME wins over our default.
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    # The exporter reads the endpoint (appending /v1/traces), headers and timeout from the
    # OTEL_EXPORTER_OTLP_* variables itself. The provider flushes it at exit.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # for any library tracing through the global API
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """For `Client.connect(interceptors=...)`: a client's interceptor also applies to
    the workers built on it (workflow and activity spans)."""
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer("temporalio"))]


def instrument_app(app: FastAPI, provider: TracerProvider | None) -> None:
    """A server span per request, named by method and route template."""
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    extra_sanitized = os.environ.get(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "")
    options: dict[str, Any] = {}
    if not os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") \
            and not os.environ.get("OTEL_PYTHON_EXCLUDED_URLS"):
        options["excluded_urls"] = DEFAULT_EXCLUDED_URLS
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider,
        http_capture_headers_sanitize_fields=[
            *SECRET_HEADERS, *(f.strip() for f in extra_sanitized.split(",") if f.strip())],
        # The per-chunk ASGI `receive`/`send` spans are noise (a stream sends hundreds).
        exclude_spans=["receive", "send"], **options)
