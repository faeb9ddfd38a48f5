"""Bad input: schemathesis over the app's own OpenAPI document, then hand-picked abuse.

Checks, on every response: never a 5xx, and every 4xx is OpenAI's error envelope
`{"error": {"message", "type", "param", "code"}}` (never FastAPI's `{"detail"}`).
The fuzzed API is a real `python -m launcher.cli api` process on the session stack whose runs
go to a task queue nobody serves (they stay queued: fuzzing must not drive the model).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.app import create_app
from core.settings import Settings
from tests.faults.helpers import ApiProcess, envelope_of, is_envelope, new_queue

MAX_EXAMPLES = 8  # per operation and generation mode: ~46 operations x 2 x 8
SKIPPED = {"GET /health"}  # its own shape (components), not an OpenAI object


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory,
              stack_env: dict[str, str]) -> AsyncIterator[ApiProcess]:
    env = {**stack_env, "TEMPORAL_TASK_QUEUE": new_queue("faults-fuzz")}
    process = ApiProcess("api-fuzz", tmp_path_factory.mktemp("fuzz"), env)
    try:
        yield await process.ready()
    finally:
        await asyncio.to_thread(process.proc.stop)


@pytest.fixture(scope="module")
def real_ids(api: ApiProcess) -> Iterator[dict[str, str]]:
    """Existing objects, so generated requests also reach past the id checks."""
    with httpx.Client(base_url=f"{api.url}/v1", timeout=30) as http:
        assistant = http.post("/assistants", json={"model": "fake-model"}).json()
        thread = http.post("/threads", json={"messages": [
            {"role": "user", "content": "fuzz"}]}).json()
        message = http.get(f"/threads/{thread['id']}/messages").json()["data"][0]
        run_thread = http.post("/threads", json={}).json()
        run = http.post(f"/threads/{run_thread['id']}/runs",
                        json={"assistant_id": assistant["id"]}).json()
        file = http.post("/files", data={"purpose": "assistants"},
                         files={"file": ("a.txt", b"fuzz text", "text/plain")}).json()
        store = http.post("/vector_stores", json={"name": "fuzz"}).json()
    assert "id" in run, run
    yield {"assistant_id": assistant["id"], "thread_id": thread["id"],
           "message_id": message["id"], "run_id": run["id"], "file_id": file["id"],
           "vector_store_id": store["id"]}


def _problem(label: str, response: requests.Response) -> str | None:
    if response.status_code >= 500:
        return f"{label}: {response.status_code} {response.text[:300]}"
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            return f"{label}: {response.status_code} non-JSON body {response.text[:200]!r}"
        if not is_envelope(body):
            return f"{label}: {response.status_code} not the OpenAI envelope: {body!r:.300}"
    return None


def _fuzz(operation: Any, strategy: Any, base_url: str, problems: list[str]) -> None:
    session = requests.Session()

    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate],  # no shrinking: we collect
                         suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, timeout=15)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                UnicodeError, ValueError):
            return  # the HTTP client refused to send it: nothing reached the server
        except requests.exceptions.RequestException as error:  # a hang or a dropped socket
            problems.append(f"{operation.label}: {type(error).__name__}: {error}"
                            f"\n  {case.as_curl_command()}")
            return
        problem = _problem(operation.label, response)
        if problem:
            problems.append(f"{problem}\n  {case.as_curl_command()}")

    with contextlib.suppress(Unsatisfiable):  # e.g. no negative variant without any input
        check()


def test_schemathesis_no_5xx_and_every_4xx_is_the_openai_envelope(
    settings: Settings, api: ApiProcess, real_ids: dict[str, str]
) -> None:
    schema = schemathesis.openapi.from_dict(create_app(settings).openapi())
    problems: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        if operation.label in SKIPPED:
            continue
        names = {p.name for p in operation.path_parameters}
        known = {k: v for k, v in real_ids.items() if k in names}
        strategies = [operation.as_strategy(GenerationMode.NEGATIVE)]
        positive = operation.as_strategy(GenerationMode.POSITIVE)
        if known:  # half the positive cases on real objects
            positive = st.one_of(positive, operation.as_strategy(
                GenerationMode.POSITIVE, path_parameters=known))
        strategies.append(positive)
        for strategy in strategies:
            _fuzz(operation, strategy, api.url, problems)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(sorted(set(problems))[:40])


# --- hand-picked bad input (the session's app, in process) -------------------------------

@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: exactly what a client of uvicorn gets, 500s included.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    return envelope_of(response)


async def test_bad_json_bodies_are_invalid_json_400s(http: httpx.AsyncClient) -> None:
    for raw in (b"{", b'{"model": "x",}', b"\xff\xfe not utf8", b"[1, 2", b"nul\x00l"):
        error = await _error(await http.post(
            "/v1/assistants", content=raw, headers={"content-type": "application/json"}), 400)
        assert error["type"] == "invalid_request_error"
    # Valid JSON of the wrong shape is a type error, not a parse error.
    for body in ("[]", '"a string"', "42", "null"):
        await _error(await http.post("/v1/assistants", content=body,
                                     headers={"content-type": "application/json"}), 400)


async def test_wrong_content_types_are_4xx_envelopes(http: httpx.AsyncClient) -> None:
    body = json.dumps({"model": "fake-model"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/xml", ""):
        headers = {"content-type": content_type} if content_type else {}
        response = await http.post("/v1/assistants", content=body, headers=headers)
        # Lenient servers may read the JSON anyway; what is never fine is a 5xx or {"detail"}.
        if response.status_code != 200:
            await _error(response, 400, 415)
    # A JSON body to the multipart upload endpoint.
    await _error(await http.post("/v1/files", json={"purpose": "assistants"}), 400, 415)


async def test_oversized_bodies_are_refused_with_an_envelope(http: httpx.AsyncClient) -> None:
    huge = "x" * (2 * 1024 * 1024)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/v1/assistants", {"model": "fake-model", "instructions": huge * 64}),  # 128 MB-ish
        ("/v1/assistants", {"model": "fake-model", "name": huge}),
        ("/v1/assistants", {"model": "fake-model", "description": huge}),
        ("/v1/threads", {"messages": [{"role": "user", "content": huge}] * 3}),
        ("/v1/assistants", {"model": "fake-model",
                            "tools": [{"type": "code_interpreter"}] * 5000}),
    ]
    for path, body in cases[1:]:
        response = await http.post(path, json=body)
        error = await _error(response, 400, 413)
        assert error["message"]
    # A body far past anything reasonable never reaches a 5xx either.
    response = await http.post(cases[0][0], content=json.dumps(cases[0][1]),
                               headers={"content-type": "application/json"})
    await _error(response, 400, 413)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/assistants/thread_abc"),
    ("POST", "/v1/assistants/run_abc"),
    ("DELETE", "/v1/assistants/asst"),
    ("GET", "/v1/threads/asst_abc"),
    ("GET", "/v1/threads/thread_abc/messages/run_abc"),
    ("GET", "/v1/threads/msg_abc/runs"),
    ("GET", "/v1/threads/thread_abc/runs/msg_abc"),
    ("POST", "/v1/threads/thread_abc/runs/step_abc/cancel"),
    ("GET", "/v1/threads/thread_abc/runs/run_abc/steps/msg_abc"),
    ("GET", "/v1/files/vs_abc"),
    ("GET", "/v1/vector_stores/file-abc"),
    ("GET", "/v1/threads/thread_abc/runs/run_abc/events"),
    ("GET", "/v1/assistants/%00"),
    ("GET", "/v1/assistants/asst_" + "a" * 5000),
])
async def test_ids_of_the_wrong_prefix_are_400_or_404_envelopes(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path, json={} if method == "POST" else None)
    error = await _error(response, 400, 404)
    assert error["type"] == "invalid_request_error"


async def test_query_parameters_out_of_range_are_400_envelopes(http: httpx.AsyncClient) -> None:
    for query in ("limit=0", "limit=101", "limit=abc", "order=sideways", "after=run_x&limit=-1",
                  "limit=99999999999999999999999"):
        await _error(await http.get(f"/v1/assistants?{query}"), 400)


async def test_metadata_over_the_limits_is_a_400_envelope(http: httpx.AsyncClient) -> None:
    too_many = {f"k{i}": "v" for i in range(17)}
    long_key = {"k" * 65: "v"}
    long_value = {"k": "v" * 513}
    not_strings = {"k": 1}
    nested = {"k": {"a": "b"}}
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    thread = (await http.post("/v1/threads", json={})).json()
    targets = [("/v1/assistants", {"model": "fake-model"}),
               (f"/v1/assistants/{assistant['id']}", {}),
               ("/v1/threads", {}),
               (f"/v1/threads/{thread['id']}", {}),
               (f"/v1/threads/{thread['id']}/messages", {"role": "user", "content": "x"}),
               ("/v1/vector_stores", {})]
    for path, base in targets:
        for metadata in (too_many, long_key, long_value, not_strings, nested, "a string", [1]):
            error = await _error(await http.post(path, json={**base, "metadata": metadata}), 400)
            assert error["param"] is None or "metadata" in error["param"], (path, error)
    # The limits themselves are fine.
    ok = {f"k{i}": "v" * 512 for i in range(16)}
    response = await http.post("/v1/assistants", json={"model": "fake-model", "metadata": ok})
    assert response.status_code == 200, response.text


async def test_nul_characters_are_400_envelopes_not_500s(http: httpx.AsyncClient) -> None:
    # Postgres text and jsonb refuse U+0000; found by the schemathesis run above.
    cases: list[tuple[str, str, Any]] = [
        ("POST", "/v1/assistants", {"model": "fake-model", "name": "a\u0000b"}),
        ("POST", "/v1/assistants", {"model": "fake\u0000"}),
        ("POST", "/v1/assistants", {"model": "fake-model", "metadata": {"k": "v\u0000"}}),
        ("POST", "/v1/threads", {"messages": [{"role": "user", "content": "x\u0000y"}]}),
        ("POST", "/v1/vector_stores", {"file_ids": ["file-\u0000"]}),
        ("GET", "/v1/assistants?after=asst_%00", None),
        ("GET", "/v1/files?purpose=%00", None),
    ]
    for method, path, body in cases:
        response = await http.request(method, path, json=body)
        error = await _error(response, 400)
        assert error["code"] == "invalid_value" and "NUL" in error["message"], (path, error)


async def test_modify_assistant_with_null_model_is_a_400(http: httpx.AsyncClient) -> None:
    assistant = (await http.post("/v1/assistants", json={"model": "fake-model"})).json()
    response = await http.post(f"/v1/assistants/{assistant['id']}", json={"model": None})
    await _error(response, 400)
