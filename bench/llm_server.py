"""The test suite's fake LLM (tests/fake_llm.py) as its own process, for the benchmarks.

A separate process so the model's CPU does not share a GIL with the load generator.
Usage: python -m bench.llm_server PORT_FILE   (writes the port, then serves until killed)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.fake_llm import FakeLLM


class QuietFakeLLM(FakeLLM):
    """The fake keeps every request body for the tests; a benchmark must not grow."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = _Discard()


class _Discard(list):  # type: ignore[type-arg]
    def append(self, _item: object) -> None:
        pass


def main() -> None:
    server = QuietFakeLLM().start()
    tmp = Path(sys.argv[1] + ".tmp")
    tmp.write_text(str(server.port))
    tmp.rename(sys.argv[1])
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
