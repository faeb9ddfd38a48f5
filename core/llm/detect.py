"""Capabilities found out at first use, for models whose config entry names none.

An explicit `capabilities` object in MODELS / MODELS_CONFIG is always used as is. Without
one (or for a model no entry matches), an OpenAI-compatible server is assumed to do
native function calling until it shows otherwise, once per process:

- llama.cpp's `GET /props` says what the loaded model's chat template can do
  (`chat_template_caps`). A template without tools makes llama.cpp drop `tools`
  silently (the model never sees them), so such a model gets constrained mode:
  llama.cpp enforces `response_format: json_schema`. llama.cpp also takes `tool_choice`
  only as a string, and `modalities.vision` tells whether it can see images.
- A 4xx answer to a request with `tools` whose error mentions tools or function
  calling (vLLM without `--enable-auto-tool-choice`, Ollama's "does not support tools",
  llama.cpp without `--jinja`) switches that model to prompted mode, and the request is
  sent again in that mode at once, so the run does not fail.

Each switch is logged once. Servers that ignore `tools` silently and are not llama.cpp
(FastChat, for one) cannot be told apart from a model that chose not to call: give
those an explicit `capabilities` entry.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

import httpx

from core.llm.errors import ProviderError
from core.llm.models import Capabilities
from core.llm.types import ChatRequest

logger = logging.getLogger(__name__)

_TOOLS_MENTIONED = re.compile(r"tool|function[ _-]?call", re.IGNORECASE)
# Errors that say nothing about the request's shape.
_NOT_ABOUT_THE_REQUEST = {401, 403, 404, 408, 409, 413, 429}
PROBE_TIMEOUT_SECONDS = 5.0


def rejects_tools(error: ProviderError, request: ChatRequest, caps: Capabilities) -> bool:
    """Whether `error` is the server refusing native function calling for this request."""
    return (error.status is not None and 400 <= error.status < 500
            and error.status not in _NOT_ABOUT_THE_REQUEST
            and caps.native_tools and bool(request.tools) and request.tool_choice != "none"
            and _TOOLS_MENTIONED.search(error.message) is not None)


def prompted(caps: Capabilities) -> Capabilities:
    """The fallback after a rejection: tools described in the prompt, calls parsed back."""
    return replace(caps, native_tools=False)


def server_root(base_url: str) -> str:
    """`http://host:8080/v1` -> `http://host:8080`: where llama.cpp serves `/props`."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


async def probe_llama_cpp(http: httpx.AsyncClient, base_url: str,
                          headers: dict[str, str]) -> Capabilities | None:
    """What llama.cpp says about its model, or None when the server is not llama.cpp.

    Raises httpx.HTTPError when the server does not answer.
    """
    response = await http.get(f"{server_root(base_url)}/props", headers=headers,
                              timeout=PROBE_TIMEOUT_SECONDS)
    if response.status_code != 200:
        return None
    try:
        props: Any = response.json()
    except ValueError:
        return None
    template = props.get("chat_template_caps") if isinstance(props, dict) else None
    if not isinstance(template, dict) or not isinstance(template.get("supports_tools"), bool):
        return None
    tools = template["supports_tools"]
    modalities = props.get("modalities")
    vision = modalities.get("vision") if isinstance(modalities, dict) else None
    return Capabilities(
        native_tools=tools,
        json_schema=True,  # llama.cpp turns any JSON schema into a grammar
        vision=vision if isinstance(vision, bool) else True,
        tool_role=template.get("supports_tool_calls") is not False,
        tool_choice_object=False,  # "type must be string": an object is ignored
    )


def describe(caps: Capabilities) -> str:
    """The mode a request with tools is sent in, for the logs."""
    if caps.native_tools:
        return "native"
    return "constrained" if caps.json_schema else "prompted"
