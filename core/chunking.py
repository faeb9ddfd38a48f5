"""OpenAI's static chunking strategy: windows of N tokens overlapping by M.

Tokens are approximated by a deterministic regex tokenizer (a word, a number
or one punctuation mark is one token). tiktoken would match OpenAI's counts
exactly, but it downloads its BPE tables at first use, which a self-hosted,
possibly offline deployment cannot rely on. Words are ~1.3 BPE tokens on
average English prose, so our chunks hold somewhat more text than OpenAI's.
Each chunk is an exact substring of the source, so quotes stay verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP_TOKENS = 400
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    token_count: int


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def chunk_text(text: str, max_tokens: int = DEFAULT_MAX_TOKENS,
               overlap_tokens: int = DEFAULT_OVERLAP_TOKENS) -> list[Chunk]:
    if max_tokens < 1 or not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError("invalid chunking strategy")
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if not spans:
        return []
    step = max_tokens - overlap_tokens
    chunks: list[Chunk] = []
    start = 0
    while True:
        window = spans[start:start + max_tokens]
        chunks.append(Chunk(len(chunks), text[window[0][0]:window[-1][1]], len(window)))
        if start + max_tokens >= len(spans):
            return chunks
        start += step
