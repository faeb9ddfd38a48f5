"""The hot reads' shortcuts answer exactly as the canonical paths do.

- api/wire_json.py: pre-serialized JSON is byte for byte FastAPI's response_model output.
- api/fast_lane.py: every GET it serves is answered as the app's own routes answer it
  (compared with an app built without the fast lane), errors and headers included.

The write side (api/services/run_statements.py, core/rawdb.py) is tests/test_api_fast_writes.py.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import TypeAdapter
from pydantic_core import to_json
from sqlalchemy import text
from sqlmodel import SQLModel

from api.schemas.common import ListResponse
from api.schemas.messages import MessageObject
from api.schemas.runs import RunObject
from api.wire_json import list_page, ordered
from core import ids
from core.settings import Settings
from core.tables import MessageRow, RunRow, ThreadRow
from tests.auth_helpers import bearer, new_key
from tests.fast_path_helpers import serve_app

HEADERS = ("content-type", "content-length", "openai-poll-after-ms", "www-authenticate")
TRICKY = {
    "id": "run_x", "object": "thread.run", "created_at": 1700000000, "assistant_id": "asst_x",
    "thread_id": "thread_x", "status": "requires_action", "started_at": None,
    "expires_at": 2**40, "cancelled_at": None, "failed_at": None, "completed_at": None,
    "required_action": {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "f", "arguments": "{\"a\": \"\\u2028 </script> \\\\\"}"}}]}},
    "last_error": None, "model": "m☃", "instructions": "tab\t, nl\n, quote\", emoji 🎉",
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "maximum": 2**70, "minimum": -0.0, "multipleOf": 1e-7,
        "big": 1e16, "tiny": 5e-324, "sum": 0.1 + 0.2, "esc": "\x01\x1f\x7f\u2028\ud7ff"}}}],
    "metadata": {"k": "v€", "z": ""}, "incomplete_details": None,
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    "temperature": 0.30000000000000004, "top_p": 1.0, "max_prompt_tokens": 256,
    "max_completion_tokens": None, "truncation_strategy": {"type": "auto", "last_messages": None},
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True}},
    "tool_choice": "auto", "parallel_tool_calls": False,
}


def _validated_json(model: Any, content: Any) -> bytes:
    """What FastAPI sends for `content` with `response_model=model`: validate, dump."""
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    return adapter.dump_json(adapter.validate_python(content), by_alias=True)


def test_preserialized_json_is_what_response_model_sends() -> None:
    assert to_json(ordered(RunObject, TRICKY)) == _validated_json(RunObject, TRICKY)
    message = {"id": "msg_x", "object": "thread.message", "created_at": 1, "thread_id": "t",
               "status": "completed", "incomplete_details": None, "completed_at": 2,
               "incomplete_at": None, "role": "user", "content": [
                   {"text": {"value": "ünï\u0000", "annotations": []}, "type": "text"}],
               "assistant_id": None, "run_id": None, "attachments": [], "metadata": {}}
    page = list_page(MessageObject, [message, message], lambda m: dict(reversed(m.items())),
                     True)
    assert to_json(page) == _validated_json(ListResponse[MessageObject], page)


# --- the fast lane against the routes --------------------------------------------------

async def _insert(app: FastAPI, *rows: SQLModel) -> None:
    async with app.state.sessions() as session:
        for row in rows:
            session.add(row)
            await session.flush()
        await session.commit()


def _run(thread_id: str, status: str, **extra: Any) -> RunRow:
    values: dict[str, Any] = {k: v for k, v in TRICKY.items() if k not in ("object", "metadata")}
    values.update(id=ids.new_id(ids.RUN), thread_id=thread_id, status=status,
                  metadata_=TRICKY["metadata"], **extra)
    return RunRow(**values)


async def _fixture_objects(app: FastAPI, http: httpx.AsyncClient) -> dict[str, Any]:
    """A thread with 25 messages and runs in fixed states (no workflow ever moves them),
    and another project's thread."""
    thread = (await http.post("/v1/threads", json={"messages": [
        {"role": "user", "content": f"m{i} ☃", "metadata": {"i": str(i)}}
        for i in range(25)]})).json()["id"]
    done, active = _run(thread, "completed"), _run(thread, "requires_action")
    other = ThreadRow(id=ids.new_id(ids.THREAD), project_id="other-project", created_at=1,
                      metadata_={})
    other_run = _run(other.id, "completed")
    await _insert(app, done, active, other, other_run)
    listed = (await http.get(f"/v1/threads/{thread}/messages?limit=100&order=asc")).json()
    message_ids = [m["id"] for m in listed["data"]]
    await _insert(app, MessageRow(id=ids.new_id(ids.MESSAGE), thread_id=thread, created_at=5,
                                  role="assistant", content=[], run_id=done.id, metadata_={}))
    return {"thread": thread, "done": done.id, "active": active.id, "other": other.id,
            "other_run": other_run.id, "messages": message_ids}


def _requests(o: dict[str, Any]) -> list[str]:
    t, m = o["thread"], o["messages"]
    lists = [f"/v1/threads/{t}/messages", f"/v1/threads/{t}/runs"]
    queries = ["", "?limit=5", "?order=asc", f"?after={m[10]}", f"?before={m[10]}",
               f"?limit=3&order=asc&after={m[3]}", f"?limit=3&order=asc&before={m[20]}",
               f"?after={m[3]}&before={m[9]}", f"?after={m[3]}&before={m[9]}&order=asc",
               f"?run_id={o['done']}", "?run_id=run_nope", "?after=msg_nope", "?before=",
               "?limit=0", "?limit=101", "?limit=abc", "?limit=%31%30", "?limit=5&limit=6",
               "?order=up", "?foo=bar", f"?after={o['done']}", f"?after={o['active']}"]
    return [
        f"/v1/threads/{t}/runs/{o['active']}", f"/threads/{t}/runs/{o['active']}",
        f"/v1/threads/{t}/runs/{o['done']}", f"/v1/threads/{t}/runs/{o['done']}?x=1",
        f"/v1/threads/{t}/runs/{o['done']}/", f"/v1/threads/{o['other']}/runs/{o['other_run']}",
        f"/v1/threads/{t}/runs/{o['other_run']}", f"/v1/threads/{t}/runs/run_nope",
        f"/v1/threads/{t}/runs/nope", f"/v1/threads/nope/runs/{o['done']}",
        f"/v1/threads/{o['other']}/messages", f"/v1/threads/{o['other']}/runs",
        "/v1/threads/thread_nope/messages", f"/v1/threads/{t}/messages/{m[0]}",
        f"/threads/{t}/messages/{m[1]}", f"/v1/threads/{o['other']}/messages/{m[0]}",
        f"/v1/threads/{t}/messages/msg_nope", f"/v1/threads/{t}/messages/bad",
        *[base + query for base in lists for query in queries],
        *[f"/threads/{t}/messages{query}" for query in queries[:4]],
    ]


def _model_of(path: str) -> Any:
    route = path.split("?")[0].removeprefix("/v1").split("/")
    model = {"runs": RunObject, "messages": MessageObject}[route[3]]
    return model if len(route) > 4 else ListResponse[model]  # type: ignore[valid-type]


def _seen(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    return (response.status_code, response.content,
            {k: v for k, v in response.headers.items() if k in HEADERS})


async def test_fast_lane_answers_exactly_as_the_routes(settings: Settings) -> None:
    async with serve_app(settings) as (app, fast), serve_app(settings, False) as (_, plain):
        objects = await _fixture_objects(app, fast)
        try:
            for path in _requests(objects):
                response = await fast.get(path)
                assert _seen(response) == _seen(await plain.get(path)), path
                if response.status_code == 200:  # what response_model would have sent
                    model = _model_of(path)
                    assert response.content == _validated_json(model, response.json()), path
            # The active run carries the poll hint, through either path.
            active = await fast.get(f"/v1/threads/{objects['thread']}/runs/{objects['active']}")
            assert active.headers["openai-poll-after-ms"] == "100"
        finally:  # no workflow will ever end it
            async with app.state.engine.begin() as conn:
                await conn.execute(text("UPDATE runs SET status = 'cancelled' WHERE id = :r"),
                                   {"r": objects["active"]})


async def test_fast_lane_authenticates_like_the_routes(settings: Settings) -> None:
    _, key_a = await new_key(settings, "fast-lane-a")
    _, key_b = await new_key(settings, "fast-lane-b")
    async with (serve_app(settings, auth_mode="required") as (_, fast),
                serve_app(settings, False, auth_mode="required") as (_, plain)):
        thread = (await fast.post("/v1/threads", json={}, headers=bearer(key_a))).json()["id"]
        paths = [f"/v1/threads/{thread}/messages", f"/v1/threads/{thread}/runs/run_nope"]
        for headers in (bearer(key_a), bearer(key_b), {}, bearer("sk-proj-" + "x" * 43),
                        {"Authorization": "Basic abc"}):
            for path in paths:
                assert _seen(await fast.get(path, headers=headers)) == _seen(
                    await plain.get(path, headers=headers)), (path, headers)


async def test_fast_lane_requests_are_counted_under_their_route(
        http: httpx.AsyncClient) -> None:
    thread = (await http.post("/v1/threads", json={})).json()["id"]

    async def count() -> float:
        metrics = (await http.get("/metrics")).text
        line = next((line for line in metrics.splitlines() if line.startswith(
            'assistants_http_requests_total{method="GET",route="/v1/threads/{thread_id}/'
            'messages",status="200"}')), " 0")
        return float(line.rsplit(" ", 1)[1])

    before = await count()
    assert (await http.get(f"/v1/threads/{thread}/messages")).status_code == 200
    assert await count() == before + 1
