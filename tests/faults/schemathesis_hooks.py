"""A schemathesis check for `st run` (loaded through its config's `hooks`, with the repository
on PYTHONPATH): every 4xx is OpenAI's error envelope `{"error": {"message", "type", "param",
"code"}}`, never FastAPI's `{"detail"}` or a non-JSON body. The built-in `not_a_server_error`
covers the 5xx."""

from __future__ import annotations

import json
from typing import Any

import schemathesis

from tests.faults.helpers import is_envelope


@schemathesis.check
def openai_error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{response.status_code} body is not JSON: "
                             f"{response.content[:200]!r}") from error
    if not is_envelope(body):
        raise AssertionError(f"{response.status_code} is not OpenAI's error envelope: "
                             f"{str(body)[:300]}")
    return None
