"""Project scoping: project B sees none of project A's objects, through any route.

Another project's object answers exactly like a missing one (404, "No X found"),
so B cannot even learn that an id exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.settings import Settings
from tests.auth_helpers import assert_error, bearer, new_key, serve

pytestmark = pytest.mark.usefixtures("worker")


class Client:
    """One project's view of the API: every request carries its key."""

    def __init__(self, http: httpx.AsyncClient, secret: str) -> None:
        self.http, self.headers = http, bearer(secret)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.call(method, path, **kwargs)
        assert response.status_code == 200, (method, path, response.text)
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
async def projects(settings: Settings) -> AsyncIterator[tuple[Client, Client]]:
    _, key_a = await new_key(settings, "proj-a")
    _, key_b = await new_key(settings, "proj-b")
    async with serve(settings, auth_mode="required") as http:
        yield Client(http, key_a), Client(http, key_b)


async def _objects_of(a: Client) -> dict[str, str]:
    """Project A's assistant, thread, message, completed run and its step, file,
    vector store and file batch."""
    asst = (await a.ok("POST", "/v1/assistants", json={"model": "fake-model"}))["id"]
    thread = (await a.ok("POST", "/v1/threads", json={"messages": [
        {"role": "user", "content": "secret plans [[reply:Understood.]]"}]}))["id"]
    run = await a.ok("POST", f"/v1/threads/{thread}/runs", json={"assistant_id": asst})
    for _ in range(200):
        if run["status"] not in ("queued", "in_progress"):
            break
        await asyncio.sleep(0.05)
        run = await a.ok("GET", f"/v1/threads/{thread}/runs/{run['id']}")
    assert run["status"] == "completed", run
    message = (await a.ok("GET", f"/v1/threads/{thread}/messages"))["data"][0]["id"]
    step = (await a.ok("GET", f"/v1/threads/{thread}/runs/{run['id']}/steps"))["data"][0]["id"]
    file = (await a.ok("POST", "/v1/files", data={"purpose": "assistants"},
                       files={"file": ("a.txt", b"project A only", "text/plain")}))["id"]
    store = (await a.ok("POST", "/v1/vector_stores", json={"file_ids": [file]}))["id"]
    batch = (await a.ok("POST", f"/v1/vector_stores/{store}/file_batches",
                        json={"file_ids": [file]}))["id"]
    return {"asst": asst, "thread": thread, "msg": message, "run": run["id"], "step": step,
            "file": file, "vs": store, "batch": batch}


def _matrix(o: dict[str, str], own_asst: str, own_thread: str,
            own_store: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    t, r, vs, f = o["thread"], o["run"], o["vs"], o["file"]
    meta = {"metadata": {"k": "v"}}
    return [
        ("GET", f"/v1/assistants/{o['asst']}", None),
        ("POST", f"/v1/assistants/{o['asst']}", meta),
        ("DELETE", f"/assistants/{o['asst']}", None),
        ("GET", f"/v1/threads/{t}", None), ("POST", f"/v1/threads/{t}", meta),
        ("DELETE", f"/v1/threads/{t}", None),
        ("GET", f"/v1/threads/{t}/messages", None),
        ("POST", f"/v1/threads/{t}/messages", {"role": "user", "content": "hi"}),
        ("GET", f"/v1/threads/{t}/messages/{o['msg']}", None),
        ("POST", f"/v1/threads/{t}/messages/{o['msg']}", meta),
        ("DELETE", f"/threads/{t}/messages/{o['msg']}", None),
        ("GET", f"/v1/threads/{t}/runs", None),
        ("POST", f"/v1/threads/{t}/runs", {"assistant_id": own_asst}),
        ("POST", f"/v1/threads/{own_thread}/runs", {"assistant_id": o["asst"]}),
        ("POST", "/v1/threads/runs", {"assistant_id": o["asst"]}),
        ("GET", f"/v1/threads/{t}/runs/{r}", None),
        ("POST", f"/v1/threads/{t}/runs/{r}", meta),
        ("POST", f"/v1/threads/{t}/runs/{r}/cancel", None),
        ("POST", f"/v1/threads/{t}/runs/{r}/submit_tool_outputs",
         {"tool_outputs": [{"tool_call_id": "call_x", "output": "o"}]}),
        ("GET", f"/v1/threads/{t}/runs/{r}/events", None),
        ("GET", f"/threads/{t}/runs/{r}/events?starting_after=0-0", None),
        ("GET", f"/v1/threads/{t}/runs/{r}/steps", None),
        ("GET", f"/v1/threads/{t}/runs/{r}/steps/{o['step']}", None),
        ("GET", f"/v1/files/{f}", None), ("GET", f"/v1/files/{f}/content", None),
        ("GET", f"/files/{f}/content", None), ("DELETE", f"/v1/files/{f}", None),
        ("GET", f"/v1/vector_stores/{vs}", None), ("POST", f"/v1/vector_stores/{vs}", meta),
        ("DELETE", f"/v1/vector_stores/{vs}", None),
        ("POST", f"/v1/vector_stores/{vs}/search", {"query": "plans"}),
        ("GET", f"/v1/vector_stores/{vs}/files", None),
        ("POST", f"/v1/vector_stores/{vs}/files", {"file_id": f}),
        ("GET", f"/v1/vector_stores/{vs}/files/{f}", None),
        ("POST", f"/v1/vector_stores/{vs}/files/{f}", {"attributes": {"k": "v"}}),
        ("DELETE", f"/v1/vector_stores/{vs}/files/{f}", None),
        ("GET", f"/v1/vector_stores/{vs}/files/{f}/content", None),
        ("POST", f"/v1/vector_stores/{vs}/file_batches", {"file_ids": [f]}),
        ("GET", f"/v1/vector_stores/{vs}/file_batches/{o['batch']}", None),
        ("POST", f"/v1/vector_stores/{vs}/file_batches/{o['batch']}/cancel", None),
        ("GET", f"/v1/vector_stores/{vs}/file_batches/{o['batch']}/files", None),
        # B's own store cannot take in A's file, by any route.
        ("POST", "/v1/vector_stores", {"file_ids": [f]}),
        ("POST", f"/v1/vector_stores/{own_store}/files", {"file_id": f}),
        ("POST", f"/v1/vector_stores/{own_store}/file_batches", {"file_ids": [f]}),
    ]


async def test_other_projects_objects_are_not_found(projects: tuple[Client, Client]) -> None:
    a, b = projects
    objects = await _objects_of(a)
    own_asst = (await b.ok("POST", "/v1/assistants", json={"model": "fake-model"}))["id"]
    own_thread = (await b.ok("POST", "/v1/threads"))["id"]
    own_store = (await b.ok("POST", "/v1/vector_stores", json={}))["id"]
    for method, path, body in _matrix(objects, own_asst, own_thread, own_store):
        response = await b.call(method, path, json=body)
        error = assert_error(response, 404, None)
        # OpenAI's wordings: "No such File object: file-…" on /files, "No … found with
        # id '…'." elsewhere; both name the object and say nothing of its project.
        assert error["message"].startswith("No "), (method, path, error)
        assert "found with id" in error["message"] or error["message"].startswith(
            "No such File object: "), (method, path, error)
    # Nothing of A's changed or went away.
    assert (await a.ok("GET", f"/v1/assistants/{objects['asst']}"))["metadata"] == {}
    assert (await a.ok("GET", f"/v1/threads/{objects['thread']}"))["metadata"] == {}
    assert (await a.call("GET", f"/v1/files/{objects['file']}/content")).content == \
        b"project A only"
    run = await a.ok("GET", f"/v1/threads/{objects['thread']}/runs/{objects['run']}")
    assert run["metadata"] == {} and run["status"] == "completed"
    assert (await a.ok("GET", f"/v1/vector_stores/{objects['vs']}"))["metadata"] == {}
    assert (await a.ok("GET", f"/v1/threads/{objects['thread']}/messages"))["data"]


async def test_lists_show_only_the_callers_objects(projects: tuple[Client, Client]) -> None:
    a, b = projects
    mine = {
        "assistants": (await a.ok("POST", "/v1/assistants", json={"model": "m"}))["id"],
        "files": (await a.ok("POST", "/v1/files", data={"purpose": "assistants"},
                             files={"file": ("b.txt", b"b", "text/plain")}))["id"],
        "vector_stores": (await a.ok("POST", "/v1/vector_stores", json={}))["id"],
    }
    for kind, object_id in mine.items():
        listed_a = [item["id"] for item in (await a.ok("GET", f"/v1/{kind}"))["data"]]
        listed_b = [item["id"] for item in (await b.ok("GET", f"/v1/{kind}"))["data"]]
        assert object_id in listed_a and object_id not in listed_b, kind
        # A cursor naming A's object is no cursor in B's list.
        paged = await b.call("GET", f"/v1/{kind}", params={"after": object_id})
        assert_error(paged, 400, None, "Invalid 'after'")
