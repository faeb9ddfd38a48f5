"""The launcher's ports, in process: how free ports are picked, and a start that lost one.

`tests/test_launcher.py` runs `assistants up` end to end.
"""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from launcher.embedded import EmbeddedStack
from launcher.processes import free_port

HOST = "127.0.0.1"


class _FlakyStack(EmbeddedStack):
    """Loses a port to another process on the first start, like a busy machine does."""

    def __init__(self, error: str) -> None:
        super().__init__(Path("/nonexistent"))
        self.error = error
        self.starts = 0
        self.stops = 0

    def _start_once(self, configured: dict[str, str]) -> dict[str, str]:
        self.starts += 1
        if self.starts == 1:
            raise RuntimeError(self.error)
        return {"DATABASE_URL": "postgresql+psycopg://x"}

    def stop(self) -> None:
        self.stops += 1


def test_stack_start_retries_when_a_port_was_taken_meanwhile() -> None:
    stack = _FlakyStack("temporal exited with code 1:\nlisten tcp 127.0.0.1:42075: "
                        "bind: address already in use")
    assert stack.start({}) == {"DATABASE_URL": "postgresql+psycopg://x"}
    assert (stack.starts, stack.stops) == (2, 1)

    broken = _FlakyStack("postgres exited with code 1:\nFATAL: data directory is corrupt")
    with pytest.raises(RuntimeError, match="corrupt"):
        broken.start({})
    assert broken.starts == 1  # a failure other than a lost port is not retried


def test_free_port_keeps_its_port_from_other_processes_picks() -> None:
    """A port from free_port() waits in TIME_WAIT, where Linux does not hand it to a
    `bind(0)` (the Temporal dev server picks its internal ports that way, and once took
    one chosen for it: it died); a server that binds it by number still can."""
    port = free_port()
    waiting = {c.laddr.port for c in psutil.net_connections(kind="tcp")
               if c.status == psutil.CONN_TIME_WAIT}
    assert port in waiting
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((HOST, port))
        server.listen()
