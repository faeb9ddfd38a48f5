"""OpenAI-style prefixed identifiers (`asst_…`, `thread_…`, `msg_…`, `file-…`)."""

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
# Files are spelled as OpenAI spells them: `file-` and 22 base-62 characters
# (`file-4wDz5b167pAf72nx1h9eiN`), made by `new_file_id`. Earlier releases made `file_` + 24
# like every other id; those rows stay in databases and in clients' hands, so `is_file_id`
# accepts both forms wherever a file id is taken.
FILE = "file"
_FILE_BODY_LENGTH = 22
VECTOR_STORE = "vs"
FILE_BATCH = "vsfb"


def new_id(prefix: str) -> str:
    # One read of the OS's randomness, not one per character (secrets.choice): 24 bytes,
    # so the modulo bias of 24 base-62 digits (~143 bits) is negligible.
    return _encode(prefix, int.from_bytes(secrets.token_bytes(24), "big"))


def new_file_id() -> str:
    body = _body(int.from_bytes(secrets.token_bytes(24), "big"), _FILE_BODY_LENGTH)
    return f"{FILE}-{body}"


def derived_id(prefix: str, *parts: str) -> str:
    """A deterministic id from its parents, so a retried activity writes the same row.

    Used for rows that activities create (steps, assistant messages): an
    `INSERT ... ON CONFLICT DO NOTHING` with a derived id is idempotent.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return _encode(prefix, int.from_bytes(digest[:18], "big"))


def _encode(prefix: str, number: int) -> str:
    return f"{prefix}_{_body(number, _BODY_LENGTH)}"


def _body(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) > len(prefix) + 1


def is_file_id(value: str) -> bool:
    """OpenAI's `file-…`, or the `file_…` that earlier releases made (see FILE)."""
    return has_prefix(value, FILE) or (value.startswith(FILE + "-") and len(value) > len(FILE) + 1)
