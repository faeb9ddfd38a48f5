"""Labels on file_search results, and the `file_citation` annotations they turn into.

Each result the model reads is labelled `【turn:i†filename】` (OpenAI's own
citation style); a label the model copies into its answer becomes an
annotation pointing at that result's file.
"""

from __future__ import annotations

import re
from typing import Any

_LABEL = re.compile(r"【(\d+):(\d+)†[^】]*】")


def results_text(turn: int, results: list[dict[str, Any]], start: int = 0) -> str:
    """What the model reads: labelled excerpts. Labels number a turn's results across
    its calls (`start` is where this call's results begin)."""
    if not results:
        return "No results."
    return "\n\n".join(
        f"【{turn}:{start + i}†{r['file_name']}】 "
        + " ".join(c["text"] for c in r.get("content") or [])
        for i, r in enumerate(results))


def has_labels(text: str) -> bool:
    """Whether `citations` could find anything in `text` (before reading any results)."""
    return _LABEL.search(text) is not None


def citations(text: str, results_by_turn: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """`file_citation` annotations for the labels the model copied into its answer."""
    annotations = []
    for match in _LABEL.finditer(text):
        results = results_by_turn.get(int(match.group(1))) or []
        index = int(match.group(2))
        if index < len(results):
            annotations.append({"type": "file_citation", "text": match.group(0),
                                "start_index": match.start(), "end_index": match.end(),
                                "file_citation": {"file_id": results[index]["file_id"]}})
    return annotations
