"""Token estimates for when a backend does not report usage.

No tokenizer download is possible offline (tiktoken fetches its BPE files at
run time), so this is a deterministic estimate: about four characters per
token, counting at least one per word-like piece. It errs high on purpose:
trimming a prompt a little too much is safer than overflowing a context.
"""

from __future__ import annotations

import math
import re
from typing import Any

_PIECES = re.compile(r"\w+|[^\w\s]")
# Chat formats add a few tokens of framing per message.
MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return max(len(_PIECES.findall(text)), math.ceil(len(text) / 4))


def content_tokens(content: str | list[dict[str, Any]]) -> int:
    if isinstance(content, str):
        return estimate_tokens(content)
    total = 0
    for part in content:
        if part.get("type") == "text":
            total += estimate_tokens(str(part.get("text", "")))
        else:
            total += 85  # an image at low detail, as OpenAI bills it
    return total
