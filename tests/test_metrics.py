"""GET /metrics: HTTP latency by route template, runs by status, and the worker's activity
metrics (the test worker runs in this process, so they share the default registry)."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from activities.metrics import serve_metrics
from api.metrics import route_template

pytestmark = pytest.mark.usefixtures("worker")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_http_metrics_use_route_templates(http: httpx.AsyncClient) -> None:
    before = await _scrape(http)
    created = await http.post("/v1/assistants", json={"model": "gpt-4o", "name": "metrics"})
    assert created.status_code == 200
    assistant_id = created.json()["id"]
    assert (await http.get(f"/v1/assistants/{assistant_id}")).status_code == 200
    assert (await http.get(f"/assistants/{assistant_id}")).status_code == 200
    assert (await http.get("/v1/assistants/asst_nope")).status_code == 404
    assert (await http.get(f"/no/such/path/{assistant_id}")).status_code == 404
    after = await _scrape(http)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    post = {"method": "POST", "route": "/v1/assistants", "status": "200"}
    get = {"method": "GET", "route": "/v1/assistants/{assistant_id}", "status": "200"}
    assert delta("assistants_http_requests_total", **post) == 1
    assert delta("assistants_http_request_duration_seconds_count", **post) == 1
    assert delta("assistants_http_request_duration_seconds_bucket", **post, le="+Inf") == 1
    assert _value(after, "assistants_http_request_duration_seconds_sum", **post) > 0
    assert delta("assistants_http_requests_total", **get) == 1
    assert delta("assistants_http_requests_total",
                 **{**get, "route": "/assistants/{assistant_id}"}) == 1
    assert delta("assistants_http_requests_total", **{**get, "status": "404"}) == 1
    assert delta("assistants_http_requests_total",
                 method="GET", route="<unmatched>", status="404") == 1
    # No label anywhere carries an id.
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not [r for r in routes if "asst_" in r], routes


async def test_runs_by_status_and_activity_metrics(http: httpx.AsyncClient) -> None:
    before = await _scrape(http)
    assistant = (await http.post("/v1/assistants", json={"model": "gpt-4o"})).json()
    run = (await http.post("/v1/threads/runs", json={
        "assistant_id": assistant["id"],
        "thread": {"messages": [{"role": "user", "content": "hi [[fail:503x1]] [[reply:Hello.]]"}]},
    })).json()
    assert run["status"] == "queued"
    async with asyncio.timeout(60):
        while run["status"] not in ("completed", "failed", "expired", "cancelled"):
            await asyncio.sleep(0.2)
            run = (await http.get(f"/v1/threads/{run['thread_id']}/runs/{run['id']}")).json()
    assert run["status"] == "completed"

    samples = await _scrape(http)
    assert _value(samples, "assistants_runs", status="completed") >= 1
    # Every known status is exported, at 0 when no run has it.
    for status in ("queued", "in_progress", "requires_action", "cancelling", "cancelled",
                   "failed", "completed", "incomplete", "expired"):
        assert ("assistants_runs", frozenset({("status", status)})) in samples
    # The model call failed once (a 503), then Temporal retried it.
    model_turn = {"activity": "model_turn"}
    for outcome in ("failed", "completed"):
        assert _value(samples, "assistants_activity_duration_seconds_count",
                      **model_turn, outcome=outcome) \
            > _value(before, "assistants_activity_duration_seconds_count",
                     **model_turn, outcome=outcome)
    assert _value(samples, "assistants_activity_retries_total", **model_turn) \
        >= _value(before, "assistants_activity_retries_total", **model_turn) + 1


async def test_worker_metrics_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = serve_metrics(port)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert "assistants_activity_duration_seconds" in response.text
    finally:
        server.shutdown()


@pytest.mark.parametrize(("route_path", "path", "expected"), [
    ("/assistants/{assistant_id}", "/v1/assistants/asst_1", "/v1/assistants/{assistant_id}"),
    ("/v1/assistants/{assistant_id}", "/v1/assistants/asst_1", "/v1/assistants/{assistant_id}"),
    ("/assistants/{assistant_id}", "/assistants/asst_1", "/assistants/{assistant_id}"),
    ("/health", "/health", "/health"),
    (None, "/v1/nothing/asst_1", "<unmatched>"),
])
def test_route_template(route_path: str | None, path: str, expected: str) -> None:
    route = SimpleNamespace(path=route_path) if route_path else None
    assert route_template({"type": "http", "path": path, "route": route}) == expected
