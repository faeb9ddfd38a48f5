"""OpenAI-style prefixed identifiers (`asst_…`, `thread_…`, `msg_…`)."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_BODY_LENGTH = 24

ASSISTANT = "asst"
THREAD = "thread"
MESSAGE = "msg"
RUN = "run"
STEP = "step"
TOOL_CALL = "call"
FILE = "file"
VECTOR_STORE = "vs"
FILE_BATCH = "vsfb"


def new_id(prefix: str) -> str:
    # One read of the OS's randomness, not one per character (secrets.choice): 24 bytes,
    # so the modulo bias of 24 base-62 digits (~143 bits) is negligible.
    return _encode(prefix, int.from_bytes(secrets.token_bytes(24), "big"))


def derived_id(prefix: str, *parts: str) -> str:
    """A deterministic id from its parents, so a retried activity writes the same row.

    Used for rows that activities create (steps, assistant messages): an
    `INSERT ... ON CONFLICT DO NOTHING` with a derived id is idempotent.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return _encode(prefix, int.from_bytes(digest[:18], "big"))


def _encode(prefix: str, number: int) -> str:
    chars = []
    for _ in range(_BODY_LENGTH):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return f"{prefix}_{''.join(chars)}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) > len(prefix) + 1
