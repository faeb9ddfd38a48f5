"""/files through the official SDK and raw HTTP: upload, list, retrieve, content, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai.types import FileObject

from api.app import create_app
from core.settings import Settings
from tests.wire import assert_wire


async def test_upload_retrieve_content_delete(client: openai.AsyncOpenAI) -> None:
    data = b"The quick brown fox jumps over the lazy dog.\n"
    created = await client.files.create(file=("fox.txt", data, "text/plain"),
                                        purpose="assistants")
    assert created.id.startswith("file-")
    assert (created.object, created.bytes, created.filename, created.purpose,
            created.status) == ("file", len(data), "fox.txt", "assistants", "processed")
    assert created.expires_at is None and created.status_details is None
    assert 10**9 < created.created_at < 10**10  # Unix seconds

    assert await client.files.retrieve(created.id) == created
    content = await client.files.content(created.id)
    assert content.content == data

    deleted = await client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.files.retrieve(created.id)
    assert caught.value.body == {
        "message": f"No such File object: {created.id}",
        "type": "invalid_request_error", "param": "id", "code": None}
    with pytest.raises(openai.NotFoundError):
        await client.files.content(created.id)


async def test_wire_shape_and_binary_roundtrip(http: httpx.AsyncClient) -> None:
    payload = bytes(range(256)) * 64  # every byte value survives S3
    response = await http.post("/v1/files", data={"purpose": "user_data"},
                               files={"file": ("blob.bin", payload, "application/octet-stream")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_wire(FileObject, body)
    content = await http.get(f"/files/{body['id']}/content")
    assert content.status_code == 200 and content.content == payload
    assert content.headers["content-type"] == "application/octet-stream"


async def test_list_filters_by_purpose_and_paginates(client: openai.AsyncOpenAI) -> None:
    made = [(await client.files.create(file=(f"p{i}.jsonl", b"{}\n"), purpose="batch")).id
            for i in range(3)]
    other = await client.files.create(file=("x.txt", b"x"), purpose="assistants")
    listed = [f.id async for f in client.files.list(purpose="batch")]
    assert set(made) <= set(listed) and other.id not in listed
    assert listed.index(made[2]) < listed.index(made[0])  # newest first by default

    page = await client.files.list(purpose="batch", limit=1, order="asc", after=made[0])
    assert [f.id for f in page.data] == [made[1]]
    assert page.has_more is True


async def test_expires_after_sets_expires_at(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/files", data={
        "purpose": "assistants", "expires_after[anchor]": "created_at",
        "expires_after[seconds]": "3600"}, files={"file": ("e.txt", b"e")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_at"] == body["created_at"] + 3600


@pytest.mark.parametrize(
    ("data", "files", "param", "code"),
    [
        ({}, {"file": ("a.txt", b"a")}, "purpose", "missing_required_parameter"),
        ({"purpose": "assistants"}, None, "file", "missing_required_parameter"),
        ({"purpose": "bogus"}, {"file": ("a.txt", b"a")}, "purpose", "invalid_value"),
    ],
)
async def test_upload_validation(http: httpx.AsyncClient, data: dict[str, str],
                                 files: dict[str, tuple[str, bytes]] | None, param: str,
                                 code: str) -> None:
    if files is None:  # still multipart, just without the file part
        response = await http.post("/v1/files", files={"purpose": (None, data["purpose"])})
    else:
        response = await http.post("/v1/files", data=data, files=files)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)


async def test_wrong_prefix_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/files/vs_abc")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Invalid 'file_id': 'vs_abc'. Expected an ID that begins with 'file'.")


@pytest.fixture(scope="module")
async def small_limit_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app whose upload limit is 1 KiB (same database and S3)."""
    application: FastAPI = create_app(settings.model_copy(update={"max_file_bytes": 1024}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_size_limit_is_a_clear_400(small_limit_http: httpx.AsyncClient) -> None:
    ok = await small_limit_http.post("/v1/files", data={"purpose": "assistants"},
                                     files={"file": ("ok.txt", b"x" * 1024)})
    assert ok.status_code == 200, ok.text
    response = await small_limit_http.post("/v1/files", data={"purpose": "assistants"},
                                           files={"file": ("big.txt", b"x" * 1025)})
    assert response.status_code == 400
    assert response.json() == {"error": {
        "message": "File is too large: 1025 bytes. The maximum file size is 1024 bytes.",
        "type": "invalid_request_error", "param": "file", "code": "file_too_large"}}
