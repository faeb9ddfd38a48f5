"""Bad input: schemathesis over the app's own OpenAPI document and over OpenAI's, then
hand-picked abuse.

Checks, on every response: never a 5xx, and every 4xx is OpenAI's error envelope
`{"error": {"message", "type", "param", "code"}}` (never FastAPI's `{"detail"}`).
The fuzzed API is a real `python -m launcher.cli api` process on the session stack whose runs
go to a task queue nobody serves (they stay queued: fuzzing must not drive the model).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from fastapi import FastAPI

from api.app import create_app
from core.retrieval import filter_clause
from core.settings import Settings
from tests.faults.fuzzing import OPENAI_SPEC, fuzz, real_ids, st_run
from tests.faults.helpers import ApiProcess, envelope_of, new_queue

# Generated cases per operation. The app's document: ~46 operations x 2 modes x 8 (~30 s on
# 2 cores). OpenAI's: schemathesis' coverage phase (every property with each wrong type and
# boundary value, ~4000 cases), then 25 random cases per operation: ~1 min in all.
MAX_EXAMPLES = 8
OPENAI_MAX_EXAMPLES = 25
SKIPPED = {"GET /health"}  # its own shape (components), not an OpenAI object
# Operations of OpenAI's document (tests/openai_spec) this server does not serve, each with
# the reason: they are not fuzzed. The test fails if one of them becomes served (fuzz it then)
# or if OpenAI's document has an operation that is neither served nor listed here. Empty: we
# serve every operation of the extract (assistants, threads, messages, runs, steps, files,
# vector stores), e.g. {"POST /uploads": "the Uploads API (multi-part uploads) is not served"}.
NOT_SERVED: dict[str, str] = {}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory,
              stack_env: dict[str, str]) -> AsyncIterator[ApiProcess]:
    env = {**stack_env, "TEMPORAL_TASK_QUEUE": new_queue("faults-fuzz")}
    process = ApiProcess("api-fuzz", tmp_path_factory.mktemp("fuzz"), env)
    try:
        yield await process.ready()
    finally:
        await asyncio.to_thread(process.proc.stop)


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problems:\n" + "\n".join(sorted(set(problems))[:40])


def test_schemathesis_no_5xx_and_every_4xx_is_the_openai_envelope(
    settings: Settings, api: ApiProcess
) -> None:
    schema = schemathesis.openapi.from_dict(create_app(settings).openapi())
    problems, fuzzed = fuzz(schema, api.url, real_ids(api.url), MAX_EXAMPLES, SKIPPED)
    assert len(fuzzed) > 40
    assert not problems, _report(problems)


def _route(label: str) -> str:
    """`GET /threads/{thread_id}` -> `GET /threads/{}`: parameter names may differ."""
    return re.sub(r"\{[^}]*\}", "{}", label)


def test_schemathesis_on_openais_spec_no_5xx_and_every_4xx_is_the_envelope(
    settings: Settings, api: ApiProcess, tmp_path: Path
) -> None:
    """OpenAI's own document generates what clients built from it send (its enums, its
    nesting, its formats), which the app's document cannot: it found the 500 of a search
    filter whose `type` was an object."""
    ours = {_route(f"{method.upper()} {path.removeprefix('/v1')}")
            for path, item in create_app(settings).openapi()["paths"].items() for method in item}
    spec = yaml.safe_load(OPENAI_SPEC.read_text())
    theirs = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
              for method in item if method in ("get", "post", "put", "patch", "delete")}
    assert len(theirs) >= 44
    unlisted = {label for label in theirs if _route(label) not in ours} - set(NOT_SERVED)
    assert not unlisted, f"OpenAI operations neither served nor in NOT_SERVED: {unlisted}"
    now_served = {label for label in NOT_SERVED if _route(label) in ours}
    assert not now_served, f"served now, remove from NOT_SERVED: {now_served}"
    status, output = st_run(OPENAI_SPEC, f"{api.url}/v1", real_ids(api.url),
                            real_ids(api.url), OPENAI_MAX_EXAMPLES, NOT_SERVED, tmp_path)
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) == len(theirs) - len(NOT_SERVED), output[-3000:]
    assert status == 0, output[-12000:]


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


def _nested(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "eq", "key": "k", "value": 1}
    for _ in range(depth - 1):
        spec = {"type": "and", "filters": [spec]}
    return spec


@pytest.mark.parametrize("filters", [
    '{"key": "k", "type": {}, "value": false}',  # found by fuzzing OpenAI's spec: was a 500
    '{"key": "k", "type": [], "value": 1}', '{"key": "k", "type": null, "value": 1}',
    '{"key": "k", "type": 1, "value": 1}', '{"key": "k", "value": 1}',
    '{"type": "or", "filters": [{"key": "k", "type": {}, "value": 1}]}',
    '{"type": "and", "filters": "x"}', '{"type": "and", "filters": [1]}',
    '{"type": "eq", "key": {}, "value": 1}', '{"type": "eq", "key": "k", "value": {}}',
    '{"type": "eq", "key": "k", "value": [1]}', '{"type": "in", "key": "k", "value": [{}]}',
    '{"type": "in", "key": "k", "value": [true]}', '{"type": "in", "key": "k", "value": 1}',
    '{"type": "eq", "key": "k", "value": NaN}', '{"type": "gt", "key": "k", "value": Infinity}',
    '{"type": "gte", "key": "k", "value": true}', '[]', '"eq"',
    pytest.param(json.dumps(_nested(17)), id="17-levels"),
    pytest.param(json.dumps(_nested(400)), id="400-levels"),
])
async def test_search_filters_of_any_wrong_shape_are_400_envelopes(
    http: httpx.AsyncClient, filters: str
) -> None:
    store = (await http.post("/v1/vector_stores", json={})).json()
    body = '{"query": "a", "filters": ' + filters + "}"
    response = await http.post(f"/v1/vector_stores/{store['id']}/search", content=body,
                               headers={"content-type": "application/json"})
    error = await _error(response, 400)
    assert error["param"] == "filters" and error["code"] in ("invalid_value", "invalid_type"), error
    # The limits themselves are fine.
    for good in (_nested(16), {"type": "in", "key": "k", "value": ["a", 1, 2.5]}):
        response = await http.post(f"/v1/vector_stores/{store['id']}/search",
                                   json={"query": "a", "filters": good})
        assert response.status_code == 200, response.text


def test_filter_sql_refuses_what_the_schema_should_have_with_a_value_error() -> None:
    # The endpoint turns ValueError into a 400; anything else would be a 500.
    for spec in ({"type": {}, "key": "k", "value": 1}, {"type": "and", "filters": [1]}):
        with pytest.raises(ValueError):
            filter_clause(spec)


@pytest.mark.parametrize("url", ["", " ", "example.com/a.png", "/a.png", "https:"])
async def test_image_url_parts_need_a_url(http: httpx.AsyncClient, url: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    thread = (await http.post("/v1/threads", json={})).json()
    for path, body, param in (
        (f"/v1/threads/{thread['id']}/messages", {"role": "user", "content": [part]},
         "content[0].image_url.url"),
        ("/v1/threads", {"messages": [{"role": "user", "content": [part]}]},
         "messages[0].content[0].image_url.url"),
    ):
        error = await _error(await http.post(path, json=body), 400)
        assert error == {"message": f"Invalid '{param}'. Expected a valid URL, but got a value "
                                    "with an invalid format.", "type": "invalid_request_error",
                         "param": param, "code": "invalid_value"}
    for good in ("https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="):
        part = {"type": "image_url", "image_url": {"url": good}}
        response = await http.post(f"/v1/threads/{thread['id']}/messages",
                                   json={"role": "user", "content": [part]})
        assert response.status_code == 200, response.text
