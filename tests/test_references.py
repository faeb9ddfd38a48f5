"""Ids a request refers to are checked against the caller's project when written.

With two projects' keys: every route that stores a file or vector store id (tool_resources
on create and modify, the vector_stores helper, message image_file parts and attachments,
on every route that adds messages) refuses another project's object and a missing one
with the 404 any missing object gets, naming it and where it was given, and writes
nothing; the caller's own objects are accepted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from core.db import create_engine
from core.settings import Settings
from tests.auth_helpers import assert_error, bearer, new_key, serve

pytestmark = pytest.mark.usefixtures("worker")
Body = Callable[[str], dict[str, Any]]  # an id -> a request body naming it


def _missing(object_id: str) -> str:
    """An id shaped like `object_id` (whatever its prefix) that names nothing."""
    return object_id[:-1] + ("0" if object_id[-1] != "0" else "1")


class Project:
    def __init__(self, http: httpx.AsyncClient, secret: str) -> None:
        self.http, self.headers = http, bearer(secret)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.headers)

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.http.request(method, path, headers=self.headers, **kwargs)
        assert response.status_code == 200, (method, path, response.text)
        body: dict[str, Any] = response.json()
        return body

    async def file(self) -> str:
        file_id: str = (await self.ok("POST", "/v1/files", data={"purpose": "assistants"},
                                      files={"file": ("f.txt", b"some text", "text/plain")}))["id"]
        return file_id


@pytest.fixture(scope="module")
async def projects(settings: Settings) -> AsyncIterator[tuple[Project, Project]]:
    _, key_a = await new_key(settings, "refs-project-a")
    _, key_b = await new_key(settings, "refs-project-b")
    async with serve(settings, auth_mode="required") as http:
        yield Project(http, key_a), Project(http, key_b)


def _store_resources(store: str) -> dict[str, Any]:
    return {"file_search": {"vector_store_ids": [store]}}


def _code_resources(file: str) -> dict[str, Any]:
    return {"code_interpreter": {"file_ids": [file]}}


def _helper_resources(file: str) -> dict[str, Any]:
    return {"file_search": {"vector_stores": [{"file_ids": [file]}]}}


def _image_message(file: str) -> dict[str, Any]:
    return {"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_file", "image_file": {"file_id": file}}]}


def _attached_message(file: str) -> dict[str, Any]:
    return {"role": "user", "content": "see file",
            "attachments": [{"file_id": file, "tools": [{"type": "code_interpreter"}]}]}


def _cases(assistant: str, thread: str) -> list[tuple[str, str, str, Body, str]]:
    """(route, kind, path, body, param) for each place a request names a file or store."""
    def with_assistant(extra: dict[str, Any]) -> dict[str, Any]:
        return {"assistant_id": assistant, **extra}

    return [
        ("/v1/assistants", "vector store", "/v1/assistants",
         lambda i: {"model": "m", "tool_resources": _store_resources(i)},
         "tool_resources.file_search.vector_store_ids[0]"),
        ("/v1/assistants", "file", "/v1/assistants",
         lambda i: {"model": "m", "tool_resources": _code_resources(i)},
         "tool_resources.code_interpreter.file_ids[0]"),
        ("/v1/assistants", "file", "/v1/assistants",
         lambda i: {"model": "m", "tool_resources": _helper_resources(i)},
         "tool_resources.file_search.vector_stores[0].file_ids[0]"),
        ("modify assistant", "vector store", f"/v1/assistants/{assistant}",
         lambda i: {"tool_resources": _store_resources(i)},
         "tool_resources.file_search.vector_store_ids[0]"),
        ("modify assistant", "file", f"/v1/assistants/{assistant}",
         lambda i: {"tool_resources": _code_resources(i)},
         "tool_resources.code_interpreter.file_ids[0]"),
        ("/v1/threads", "vector store", "/v1/threads",
         lambda i: {"tool_resources": _store_resources(i)},
         "tool_resources.file_search.vector_store_ids[0]"),
        ("/v1/threads", "file", "/v1/threads",
         lambda i: {"tool_resources": _code_resources(i)},
         "tool_resources.code_interpreter.file_ids[0]"),
        ("/v1/threads", "file", "/v1/threads",
         lambda i: {"tool_resources": _helper_resources(i)},
         "tool_resources.file_search.vector_stores[0].file_ids[0]"),
        ("/v1/threads", "file", "/v1/threads", lambda i: {"messages": [_image_message(i)]},
         "messages[0].content[1].image_file.file_id"),
        ("/v1/threads", "file", "/v1/threads", lambda i: {"messages": [_attached_message(i)]},
         "messages[0].attachments[0].file_id"),
        ("modify thread", "vector store", f"/v1/threads/{thread}",
         lambda i: {"tool_resources": _store_resources(i)},
         "tool_resources.file_search.vector_store_ids[0]"),
        ("modify thread", "file", f"/v1/threads/{thread}",
         lambda i: {"tool_resources": _code_resources(i)},
         "tool_resources.code_interpreter.file_ids[0]"),
        ("messages", "file", f"/v1/threads/{thread}/messages", _image_message,
         "content[1].image_file.file_id"),
        ("messages", "file", f"/v1/threads/{thread}/messages", _attached_message,
         "attachments[0].file_id"),
        ("runs", "file", f"/v1/threads/{thread}/runs",
         lambda i: with_assistant({"additional_messages": [_image_message(i)]}),
         "additional_messages[0].content[1].image_file.file_id"),
        ("runs", "file", f"/v1/threads/{thread}/runs",
         lambda i: with_assistant({"additional_messages": [_attached_message(i)]}),
         "additional_messages[0].attachments[0].file_id"),
        ("threads/runs", "vector store", "/v1/threads/runs",
         lambda i: with_assistant({"thread": {"tool_resources": _store_resources(i)}}),
         "thread.tool_resources.file_search.vector_store_ids[0]"),
        ("threads/runs", "file", "/v1/threads/runs",
         lambda i: with_assistant({"thread": {"tool_resources": _code_resources(i)}}),
         "thread.tool_resources.code_interpreter.file_ids[0]"),
        ("threads/runs", "file", "/v1/threads/runs",
         lambda i: with_assistant({"thread": {"tool_resources": _helper_resources(i)}}),
         "thread.tool_resources.file_search.vector_stores[0].file_ids[0]"),
        ("threads/runs", "file", "/v1/threads/runs",
         lambda i: with_assistant({"thread": {"messages": [_image_message(i)]}}),
         "thread.messages[0].content[1].image_file.file_id"),
        ("threads/runs", "file", "/v1/threads/runs",
         lambda i: with_assistant({"thread": {"messages": [_attached_message(i)]}}),
         "thread.messages[0].attachments[0].file_id"),
        ("threads/runs", "vector store", "/v1/threads/runs",
         lambda i: with_assistant({"tool_resources": _store_resources(i)}),
         "tool_resources.file_search.vector_store_ids[0]"),
        ("threads/runs", "file", "/v1/threads/runs",
         lambda i: with_assistant({"tool_resources": _code_resources(i)}),
         "tool_resources.code_interpreter.file_ids[0]"),
    ]


async def _thread_count(settings: Settings, project: str) -> int:
    """B's threads, from Postgres: no route lists threads."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(
                "SELECT count(*) FROM threads WHERE project_id = :p"), {"p": project})).scalar_one())
    finally:
        await engine.dispose()


async def _state(b: Project, assistant: str, thread: str) -> list[Any]:
    """What B can see that a refused request might have written."""
    return [
        [a["id"] for a in (await b.ok("GET", "/v1/assistants", params={"limit": 100}))["data"]],
        [s["id"] for s in (await b.ok("GET", "/v1/vector_stores",
                                      params={"limit": 100}))["data"]],
        await b.ok("GET", f"/v1/assistants/{assistant}"),
        await b.ok("GET", f"/v1/threads/{thread}"),
        (await b.ok("GET", f"/v1/threads/{thread}/messages"))["data"],
        (await b.ok("GET", f"/v1/threads/{thread}/runs"))["data"],
    ]


async def test_foreign_and_missing_references_are_refused(
        projects: tuple[Project, Project], settings: Settings) -> None:
    a, b = projects
    foreign = {"file": await a.file(),
               "vector store": (await a.ok("POST", "/v1/vector_stores", json={}))["id"]}
    assistant = (await b.ok("POST", "/v1/assistants", json={"model": "fake-model"}))["id"]
    thread = (await b.ok("POST", "/v1/threads", json={}))["id"]
    before = await _state(b, assistant, thread)
    threads_before = await _thread_count(settings, "refs-project-b")
    cases = _cases(assistant, thread)
    for route, kind, path, body, param in cases:
        for bad in (foreign[kind], _missing(foreign[kind])):
            error = assert_error(await b.post(path, body(bad)), 404, None,
                                 f"No {kind} found with id '{bad}'.")
            assert error["param"] == param, (route, error)
    # Nothing B owns changed, and no store or thread was made.
    assert await _state(b, assistant, thread) == before
    assert await _thread_count(settings, "refs-project-b") == threads_before
    # A's objects are untouched and still A's.
    await a.ok("GET", f"/v1/files/{foreign['file']}")
    await a.ok("GET", f"/v1/vector_stores/{foreign['vector store']}")


async def test_own_references_are_accepted(projects: tuple[Project, Project]) -> None:
    _, b = projects
    own = {"file": await b.file(),
           "vector store": (await b.ok("POST", "/v1/vector_stores", json={}))["id"]}
    assistant = (await b.ok("POST", "/v1/assistants", json={"model": "fake-model"}))["id"]
    for route, kind, path, body, _ in _cases(assistant, "THREAD"):
        # A fresh thread for each, so runs never find the thread busy.
        thread = (await b.ok("POST", "/v1/threads", json={}))["id"]
        response = await b.post(path.replace("THREAD", thread), body(own[kind]))
        assert response.status_code == 200, (route, kind, response.text)


async def test_one_missing_reference_among_several_is_named(
        projects: tuple[Project, Project]) -> None:
    _, b = projects
    own_file = await b.file()
    store = (await b.ok("POST", "/v1/vector_stores", json={}))["id"]
    missing_store = _missing(store)
    response = await b.post("/v1/threads", {
        "messages": [_image_message(own_file), _attached_message(own_file)],
        "tool_resources": {"code_interpreter": {"file_ids": [own_file]},
                           "file_search": {"vector_store_ids": [missing_store]}}})
    error = assert_error(response, 404, None, f"No vector store found with id '{missing_store}'.")
    assert error["param"] == "tool_resources.file_search.vector_store_ids[0]"
