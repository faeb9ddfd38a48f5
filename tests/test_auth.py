"""API keys, AUTH_MODE, the per-key rate limit and the body size limit, on the real stack."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.auth import auth_required
from core.api_keys import KEY_PREFIX
from core.settings import Settings
from tests.auth_helpers import assert_error, bearer, new_key, serve

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def secured(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings, auth_mode="required") as http:
        yield http


async def test_key_format_and_storage(settings: Settings, secured: httpx.AsyncClient) -> None:
    key_id, secret = await new_key(settings, "proj-format", "ci")
    assert key_id.startswith("key_") and secret.startswith(KEY_PREFIX) and len(secret) > 40
    response = await secured.get("/v1/assistants", headers=bearer(secret))
    assert response.status_code == 200, response.text
    assert (await secured.get("/assistants", headers=bearer(secret))).status_code == 200


async def test_missing_key_is_401_in_openai_shape(secured: httpx.AsyncClient) -> None:
    for path in ("/v1/assistants", "/threads/thread_x", "/v1/files", "/metrics"):
        error = assert_error(await secured.get(path), 401, None, "You didn't provide an API key")
        assert (error["type"], error["param"]) == ("invalid_request_error", None)
    # Not Bearer: as good as no key.
    response = await secured.get("/v1/assistants", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_error(response, 401, None, "You didn't provide an API key")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_wrong_key_is_401_invalid_api_key_masked(secured: httpx.AsyncClient) -> None:
    wrong = KEY_PREFIX + "x" * 40 + "abcd"
    response = await secured.post("/v1/assistants", json={"model": "m"}, headers=bearer(wrong))
    error = assert_error(response, 401, "invalid_api_key",
                         "Incorrect API key provided: sk-proj-****abcd.")
    assert "x" * 8 not in error["message"]  # the key itself is never echoed
    assert error["type"] == "invalid_request_error"
    short = await secured.get("/v1/assistants", headers=bearer("EMPTY"))
    assert_error(short, 401, "invalid_api_key", "Incorrect API key provided: ****.")


async def test_health_stays_open(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/health")).status_code == 200


async def test_metrics_needs_a_key_when_auth_is_required(
        settings: Settings, secured: httpx.AsyncClient) -> None:
    _, secret = await new_key(settings, "proj-metrics")
    response = await secured.get("/metrics", headers=bearer(secret))
    assert response.status_code == 200 and "assistants_http_requests" in response.text


async def test_revoked_key_stops_working(settings: Settings, secured: httpx.AsyncClient) -> None:
    from core.api_keys import revoke_key
    from core.db import create_engine, create_sessionmaker

    key_id, secret = await new_key(settings, "proj-revoke")
    assert (await secured.get("/v1/assistants", headers=bearer(secret))).status_code == 200
    engine = create_engine(settings.database_url, pool_size=1)
    async with create_sessionmaker(engine)() as session:
        assert (await revoke_key(session, key_id)) is not None
        assert (await revoke_key(session, "key_nonexistent")) is None
    await engine.dispose()
    assert_error(await secured.get("/v1/assistants", headers=bearer(secret)), 401,
                 "invalid_api_key")


def _cli(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": stack_env["DATABASE_URL"]}
    return subprocess.run([sys.executable, "-m", "launcher.cli", "keys", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


async def test_cli_create_list_revoke(stack_env: dict[str, str],
                                      secured: httpx.AsyncClient) -> None:
    created = await asyncio.to_thread(_cli, stack_env, "create", "--project", "cli-proj",
                                      "--name", "from the cli")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith(KEY_PREFIX) and "\n" not in secret
    key_id = created.stderr.split("Created ", 1)[1].split()[0]
    assert (await secured.get("/v1/assistants", headers=bearer(secret))).status_code == 200

    listed = await asyncio.to_thread(_cli, stack_env, "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(key_id))
    assert "cli-proj" in line and "from the cli" in line and "active" in line
    assert secret not in listed.stdout and secret[:12] in line  # the prefix, never the key

    revoked = await asyncio.to_thread(_cli, stack_env, "revoke", key_id)
    assert revoked.returncode == 0 and key_id in revoked.stdout, revoked.stderr
    assert_error(await secured.get("/v1/assistants", headers=bearer(secret)), 401,
                 "invalid_api_key")
    listed = await asyncio.to_thread(_cli, stack_env, "list")
    assert "revoked" in next(r for r in listed.stdout.splitlines() if r.startswith(key_id))
    missing = await asyncio.to_thread(_cli, stack_env, "revoke", "key_nope")
    assert missing.returncode == 1 and "no key" in missing.stderr
    bad = await asyncio.to_thread(_cli, stack_env, "create", "--project", "bad name!")
    assert bad.returncode == 2 and not bad.stdout


async def test_rate_limit_429_with_retry_after(settings: Settings) -> None:
    if time.time() % 60 > 55:  # keep all four requests inside one window
        await asyncio.sleep(61 - time.time() % 60)
    _, secret = await new_key(settings, "proj-rate")
    async with serve(settings, auth_mode="required", rate_limit_per_minute=3) as http:
        for _ in range(3):
            assert (await http.get("/v1/assistants", headers=bearer(secret))).status_code == 200
        response = await http.get("/v1/assistants", headers=bearer(secret))
        error = assert_error(response, 429, "rate_limit_exceeded", "Rate limit reached")
        assert error["type"] == "requests"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        # Per key: another key of the same project is unaffected.
        _, other = await new_key(settings, "proj-rate")
        assert (await http.get("/v1/assistants", headers=bearer(other))).status_code == 200


async def test_oversized_bodies_are_413(settings: Settings) -> None:
    _, secret = await new_key(settings, "proj-size")
    big = {"model": "m", "instructions": "x" * 5000}
    async with serve(settings, auth_mode="required", max_request_bytes=2000) as http:
        # Declared Content-Length: refused before the body is read (and before auth).
        response = await http.post("/v1/assistants", json=big)
        assert_error(response, 413, "request_too_large", "Request body too large: ")

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(10):
                yield b" " * 500
        response = await http.post("/v1/assistants", content=chunked(), headers={
            **bearer(secret), "Content-Type": "application/json"})
        assert_error(response, 413, "request_too_large", "Request body too large")
        small = await http.post("/v1/assistants", json={"model": "m"}, headers=bearer(secret))
        assert small.status_code == 200, small.text
        # Uploads are bounded by max_file_bytes instead.
        upload = await http.post("/v1/files", headers=bearer(secret), data={"purpose": "assistants"},
                                 files={"file": ("a.txt", b"y" * 10_000, "text/plain")})
        assert upload.status_code == 200, upload.text


async def test_open_mode_ignores_the_header(settings: Settings,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="api.auth"):
        async with serve(settings, auth_mode="open") as http:
            made = await http.post("/v1/assistants", json={"model": "m"},
                                   headers=bearer("EMPTY"))
            assert made.status_code == 200, made.text
            assert (await http.get("/v1/assistants")).status_code == 200
    assert any("AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)
    # Open mode is project "default": its key sees the object, another project's does not.
    _, default_key = await new_key(settings, "default")
    _, other_key = await new_key(settings, "proj-not-default")
    async with serve(settings, auth_mode="required") as http:
        path = f"/v1/assistants/{made.json()['id']}"
        assert (await http.get(path, headers=bearer(default_key))).status_code == 200
        assert_error(await http.get(path, headers=bearer(other_key)), 404)


@pytest.mark.parametrize(("mode", "host", "required"), [
    ("auto", None, False), ("auto", "127.0.0.1", False), ("auto", "localhost", False),
    ("auto", "::1", False), ("auto", "0.0.0.0", True), ("auto", "::", True),
    ("auto", "10.1.2.3", True), ("auto", "api.example.com", True),
    ("required", "127.0.0.1", True), ("open", "0.0.0.0", False),
])
def test_auto_mode_follows_the_bind_host(settings: Settings, mode: str, host: str | None,
                                         required: bool) -> None:
    configured = settings.model_copy(update={"auth_mode": mode})
    assert auth_required(configured, host) is required
    assert create_app(configured, bind_host=host).state.auth_required is required
