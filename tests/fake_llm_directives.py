"""The fake models' script language: `[[directive]]`s in the last user message.

Shared by tests/fake_llm.py (OpenAI-compatible) and tests/fake_anthropic.py (Anthropic);
the directives themselves are listed in tests/fake_llm.py's docstring.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_CALL_NAME = re.compile(r"call:([\w.-]+)\s*")
_DECODER = json.JSONDecoder()


@dataclass
class Directives:
    options: dict[str, str] = field(default_factory=dict)  # first occurrence of each name wins
    calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments string)
    text: str = ""  # the message with every directive removed, stripped


def parse_directives(text: str) -> Directives:
    """Split `text` into directives and the remaining prose.

    `[[call:...]]` arguments are decoded as JSON first so that `]]` inside them (nested arrays)
    does not end the directive; if they are not valid JSON they are passed through verbatim,
    which lets tests exercise the product's handling of malformed tool arguments.
    """
    out, rest, pos = Directives(), [], 0
    while (start := text.find("[[", pos)) != -1:
        rest.append(text[pos:start])
        if m := _CALL_NAME.match(text, start + 2):
            try:
                args, end = _DECODER.raw_decode(text, m.end())
                end = len(text) - len(text[end:].lstrip())
            except ValueError:
                args, end = ({}, m.end()) if text.startswith("]]", m.end()) else (None, -1)
            if end >= 0 and text.startswith("]]", end):
                out.calls.append((m[1], json.dumps(args, separators=(",", ":"),
                                                   ensure_ascii=False)))
                pos = end + 2
                continue
        end = text.find("]]", start + 2)
        if end == -1:  # an unterminated `[[` is just text
            rest.append(text[start:])
            pos = len(text)
            break
        name, _, value = text[start + 2:end].partition(":")
        if name.strip() == "call":  # malformed JSON arguments: pass them through raw
            call_name, _, raw = value.strip().partition(" ")
            out.calls.append((call_name, raw.strip() or "{}"))
        else:
            out.options.setdefault(name.strip(), value)
        pos = end + 2
    rest.append(text[pos:])
    out.text = "".join(rest).strip()
    return out


def content_text(content: Any) -> str:
    """Text of a message `content`: a string or a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""
