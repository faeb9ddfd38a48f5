"""The one place tests build an `openai.AsyncOpenAI` over an in-process `httpx.AsyncClient`."""

from __future__ import annotations

import httpx
import openai


def sdk_over(http: httpx.AsyncClient, base_url: str = "http://testserver/v1",
             api_key: str = "test-key") -> openai.AsyncOpenAI:
    """An SDK client that sends through `http` (usually an ASGI transport), never retrying.

    The SDK accepts a legacy `httpx.AsyncClient` at run time (`is_legacy_httpx_async_client` in
    `openai._base_client`), but its `http_client=` annotation names only its own `httpx2.AsyncClient`.
    """
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key,
                              http_client=http,  # type: ignore[arg-type]  # annotation narrower than runtime
                              max_retries=0)
