"""Child processes that die with their parent, and the small waits around them."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (after any setuid). If the
    # launcher is killed with SIGKILL it cannot clean up; the kernel then sends
    # SIGTERM to every child instead, so no server is left running.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def binary(name: str) -> str:
    """A console script installed beside this interpreter (pip wheels put binaries there)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} is not installed; run `pip install -e .`")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, and kept from other processes' `bind(port 0)` for a minute.

    A port merely bound and closed goes straight back to the kernel's pool: the Temporal
    dev server picks its internal ports that way, once took the metrics port chosen here
    for it, and died (`bind: address already in use`, then a nil-pointer panic). So, as
    the Temporal CLI does for its own ports: connect to the port and close the accepted
    end first, which leaves it in TIME_WAIT; Linux then skips it when it picks a port for
    `bind(0)`, while a server binding it by number with SO_REUSEADDR (all of ours) still
    can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection((host, port), timeout=5) as client:
            accepted, _ = listener.accept()
            accepted.close()  # this side closes first: its socket (on `port`) waits
            client.recv(1)  # the FIN arrives; closing the client completes the handshake
    return port


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class ChildProcess:
    """A named server process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            user=user,
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if ready():
                    return
            except Exception:  # "not ready yet" takes many shapes
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not become ready in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.running():
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL, for tests that prove the system survives a crash."""
        if self.running():
            self.process.kill()
            self.process.wait()
        self._log.close()
