"""OpenTelemetry: one trace from the HTTP request through the run workflow to its activities.

The API and a worker of its own (on a dedicated task queue) run in this process with a
tracer provider that keeps spans in memory; the API requires a real API key, and request
headers are captured, so the test can check that the key never reaches a span.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from api.app import create_app
from core import tracing
from core.settings import Settings
from tests.auth_helpers import bearer, new_key
from worker import run_worker

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}


@dataclass
class Traced:
    http: httpx.AsyncClient
    spans: InMemorySpanExporter
    secret: str
    worker: asyncio.Task[None]


@pytest.fixture
async def traced(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Traced]:
    # Capture every request header: the Authorization header must still not leak.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "assistants-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configured = settings.model_copy(update={
        "temporal_task_queue": f"tracing-{uuid.uuid4().hex[:10]}", "auth_mode": "required"})
    _, secret = await new_key(settings, "proj-tracing", "tracing")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(configured, stop, tracer_provider=provider))
    app = create_app(configured, tracer_provider=provider)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver",
            headers=bearer(secret),
        ) as http:
            yield Traced(http, exporter, secret, worker)
    finally:
        stop.set()
        await worker
        provider.shutdown()


def _named(spans: Iterable[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def _attribute_values(span: ReadableSpan) -> Iterable[str]:
    yield from (str(v) for v in (span.attributes or {}).values())
    for event in span.events:
        yield from (str(v) for v in (event.attributes or {}).values())
    yield from (str(v) for v in span.resource.attributes.values())


async def test_run_is_one_trace_from_http_request_to_activities(
    traced: Traced, settings: Settings
) -> None:
    http = traced.http
    assert (await http.get("/health")).status_code == 200  # probes are not traced
    assistant = (await http.post("/v1/assistants", json={"model": "gpt-4o"})).json()
    created = await http.post("/v1/threads/runs", json={
        "assistant_id": assistant["id"],
        "thread": {"messages": [{"role": "user", "content": "hi [[reply:Traced.]]"}]},
    })
    assert created.status_code == 200, created.text
    run = created.json()
    async with asyncio.timeout(60):
        while run["status"] not in TERMINAL:
            assert not traced.worker.done(), traced.worker  # the worker must be up
            await asyncio.sleep(0.2)
            run = (await http.get(f"/v1/threads/{run['thread_id']}/runs/{run['id']}")).json()
        assert run["status"] == "completed", run["last_error"]
        # The activity spans end just after the run's row says so.
        while not _named(traced.spans.get_finished_spans(), "RunActivity:model_turn"):
            await asyncio.sleep(0.1)

    spans = traced.spans.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    [request] = [s for s in _named(spans, "POST /v1/threads/runs") if s.kind == SpanKind.SERVER]
    [start] = _named(spans, "StartWorkflow:AssistantRun")
    [workflow] = _named(spans, "RunWorkflow:AssistantRun")
    model_turns = _named(spans, "RunActivity:model_turn")
    assert model_turns
    trace_id = request.context.trace_id
    for span in (start, workflow, *model_turns):
        assert span.context.trace_id == trace_id, span.name
    assert request.parent is None  # the request is the trace's root ...
    assert start.parent is not None and start.parent.span_id == request.context.span_id
    assert (start.attributes or {})["temporalWorkflowID"] == run["id"]
    assert workflow.parent is not None and workflow.parent.span_id == start.context.span_id
    for span in model_turns:  # ... and every activity span descends from it
        chain = [span.name]
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            chain.append(span.name)
        # (TracingInterceptor's workflow spans are zero-length siblings: the workflow's
        # StartActivity hangs off the client's StartWorkflow span.)
        assert chain == ["RunActivity:model_turn", "StartActivity:model_turn",
                         "StartWorkflow:AssistantRun", "POST /v1/threads/runs"], chain
    # The HTTP span is named by route template, with no ids in its name.
    gets = {s.name for s in spans if s.kind == SpanKind.SERVER and s.name.startswith("GET")}
    assert gets == {"GET /v1/threads/{thread_id}/runs/{run_id}"}, gets  # no GET /health

    # Headers were captured, the credential was not: it appears in no span anywhere.
    header_keys = [k for k in request.attributes or {} if "authorization" in k]
    assert header_keys, dict(request.attributes or {})
    assert all(request.attributes[k] == ("[REDACTED]",) for k in header_keys)  # type: ignore[index]
    secrets = [traced.secret, f"Bearer {traced.secret}",
               settings.model_api_key.get_secret_value(),
               settings.anthropic_api_key.get_secret_value()]
    for span in spans:
        for value in _attribute_values(span):
            assert not any(secret in value for secret in secrets), (span.name, value)


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*tracing.ENDPOINT_VARS, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    assert tracing.configure_tracing(tracing.API_SERVICE_NAME) is None
    assert tracing.temporal_interceptors(None) == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.configure_tracing(tracing.API_SERVICE_NAME) is None


def test_tracing_off_loads_and_installs_nothing() -> None:
    """Without the variables no instrumentation is imported and no middleware is added."""
    code = (
        "import sys; from api.app import create_app; from core.settings import Settings\n"
        "from core.tracing import configure_tracing\n"
        "app = create_app(Settings(_env_file=None), tracer_provider=configure_tracing('x'))\n"
        "assert not getattr(app, '_is_instrumented_by_opentelemetry', False)\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.instrumentation',"
        " 'opentelemetry.exporter', 'temporalio.contrib.opentelemetry'))]\n"
        "assert not loaded, loaded\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "assistants-worker"),
    ({"OTEL_SERVICE_NAME": "my-worker"}, "my-worker"),
])
def test_configure_tracing_exports_over_otlp(monkeypatch: pytest.MonkeyPatch,
                                             env: dict[str, str], expected: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    installed: list[TracerProvider] = []
    # Not the test process's global provider: that can be set only once.
    monkeypatch.setattr("opentelemetry.trace.set_tracer_provider", installed.append)
    provider = tracing.configure_tracing(tracing.WORKER_SERVICE_NAME)
    try:
        assert provider is not None and installed == [provider]
        assert provider.resource.attributes[SERVICE_NAME] == expected
        # Any: the SDK's private processors; the batch one keeps its exporter one level down.
        processors: tuple[Any, ...] = provider._active_span_processor._span_processors
        exporters = [getattr(p, "span_exporter", None) or p._batch_processor._exporter
                     for p in processors]
        assert [type(e) for e in exporters] == [OTLPSpanExporter]
        assert exporters[0]._endpoint == "http://127.0.0.1:4318/v1/traces"
        [interceptor] = tracing.temporal_interceptors(provider)
        assert type(interceptor).__name__ == "TracingInterceptor"
    finally:
        if provider is not None:  # nothing was recorded: nothing is sent
            provider.shutdown()
