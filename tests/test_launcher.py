"""`assistants up` end to end: the real launcher as a subprocess on its own ports and data dir.

Each test starts the whole embedded stack (Postgres, Valkey, SeaweedFS, Temporal,
the API and the worker) exactly as a user does, then checks that it serves, that
nothing outlives the launcher (SIGKILL included) and that data survives a restart.
Every process the launcher ever had is killed in a `finally`, whatever fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from launcher.processes import free_port

# Starts the embedded stack as child processes (the unit/integration split: tests/conftest.py).
pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 120.0
# Variables that would point `up` at external services instead of starting them.
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY",
                "S3_BUCKET_NAME", "TEMPORAL_ADDRESS")


@dataclass(frozen=True)
class UpPorts:
    api: int
    temporal: int
    temporal_ui: int

    @classmethod
    def pick(cls) -> UpPorts:
        ports: list[int] = []
        while len(ports) < 3:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return cls(*ports)


@dataclass
class Up:
    """A running `assistants up` and every descendant it has been seen with."""

    process: subprocess.Popen[bytes]
    ports: UpPorts
    output_path: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports.api}"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://{HOST}:{self.ports.temporal_ui}"

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        """The launcher's current descendants (also remembered for the final cleanup)."""
        try:
            children: list[Any] = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:
            self.seen.setdefault(child.pid, child)
        return children

    def wait_for(self, condition: Callable[[], bool], what: str,
                 timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.descendants()
            if self.process.poll() is not None:
                raise AssertionError(f"`assistants up` exited with {self.process.returncode} "
                                     f"while waiting for {what}:\n{self.output()}")
            try:
                if condition():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.output()}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running; exited ones and zombies (waiting to be reaped) count as gone."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (alive := _running(procs)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def _describe(procs: list[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:150]}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "\n".join(lines)


@contextmanager
def assistants_up(cwd: Path, data_dir: Path, ports: UpPorts) -> Iterator[Up]:
    """Start `assistants up`, wait until healthy; always kill the whole tree afterwards."""
    output_path = cwd / f"up-{time.monotonic_ns()}.log"
    argv = [sys.executable, "-m", "launcher.cli", "up", "--host", HOST,
            "--port", str(ports.api), "--temporal-port", str(ports.temporal),
            "--temporal-ui-port", str(ports.temporal_ui), "--data-dir", str(data_dir)]
    with open(output_path, "wb") as output:
        # cwd has no .env, and the env names no service: everything starts embedded.
        process = subprocess.Popen(argv, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)
    up = Up(process, ports, output_path)
    try:
        up.wait_for(lambda: _healthy(up), "GET /health to be 200 with every component ok")
        # /health answers before the launcher prints its table.
        up.wait_for(lambda: "Press Ctrl-C" in up.output(), "the startup table", 30)
        yield up
    finally:
        up.descendants()
        procs = [*up.seen.values()]
        if process.poll() is None:
            procs.append(psutil.Process(process.pid))
        for proc in procs:
            with suppress(psutil.Error):
                proc.kill()
        process.wait(30)
        _wait_gone(procs, 30)


def _healthy(up: Up) -> bool:
    response = httpx.get(f"{up.api_url}/health", timeout=5)
    if response.status_code != 200:
        return False
    components: dict[str, str] = response.json()["components"]
    assert set(components) == {"database", "redis", "s3", "temporal"}
    return all(value == "ok" for value in components.values())


def _create_assistant(up: Up, path: str, name: str) -> dict[str, Any]:
    response = httpx.post(f"{up.api_url}{path}", json={"model": "gpt-4o", "name": name},
                          timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["object"] == "assistant"
    assert body["name"] == name
    return body


def _retrieve_assistant(up: Up, assistant_id: str, path: str = "/v1/assistants") -> Any:
    response = httpx.get(f"{up.api_url}{path}/{assistant_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _terminate(up: Up) -> None:
    """SIGTERM: `up` exits 0 within 30 s and leaves nothing running."""
    procs = up.descendants()
    assert procs, "the launcher has no child processes"
    up.process.send_signal(signal.SIGTERM)
    try:
        code = up.process.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`assistants up` ignored SIGTERM for 30 s:\n{up.output()}") from None
    assert code == 0, up.output()
    assert "stopping" in up.output()
    alive = _wait_gone(procs, 10)
    assert not alive, f"still running after `up` exited:\n{_describe(alive)}"


def test_up_serves_the_api_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ports = UpPorts.pick()
    with assistants_up(tmp_path, tmp_path / "data", ports) as up:
        # The Temporal UI answers HTTP on the requested port.
        ui = httpx.get(up.temporal_ui_url, timeout=10, follow_redirects=True)
        assert ui.status_code < 500, ui.status_code

        # The API serves both `/v1` and bare paths, backed by the same database.
        via_v1 = _create_assistant(up, "/v1/assistants", "via v1")
        bare = _create_assistant(up, "/assistants", "bare path")
        assert _retrieve_assistant(up, bare["id"], "/v1/assistants")["name"] == "bare path"
        assert _retrieve_assistant(up, via_v1["id"], "/assistants")["name"] == "via v1"

        # The table tells the user where things are.
        output = up.output()
        assert f"{up.api_url}/v1" in output
        assert up.temporal_ui_url in output
        assert f"{HOST}:{ports.temporal}" in output
        assert str(tmp_path / "data") in output
        # Auth is off on loopback: the banner says so, not only api.log.
        assert ("WARNING: authentication is OFF (AUTH_MODE=auto on loopback host "
                f"{HOST})") in output

        # Keys go into the running stack's database with no DATABASE_URL to copy.
        created = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "keys", "create", "--project", "ops",
             "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, check=False)
        assert created.returncode == 0 and created.stdout.startswith("sk-proj-"), created.stderr
        assert _retrieve_assistant(up, bare["id"])["name"] == "bare path"  # still serving

        _terminate(up)


def test_up_takes_everything_down_on_sigkill_and_data_persists(tmp_path: Path) -> None:
    ports = UpPorts.pick()
    data_dir = tmp_path / "data"
    with assistants_up(tmp_path, data_dir, ports) as up:
        created = _create_assistant(up, "/v1/assistants", "survivor")

        # SIGKILL gives the launcher no chance to clean up: PR_SET_PDEATHSIG must.
        procs = up.descendants()
        names = {proc.name() for proc in procs}
        assert {"postgres", "temporal", "weed"} <= names, names
        up.process.kill()
        up.process.wait(10)
        alive = _wait_gone(procs, 20)
        assert not alive, f"still running 20 s after SIGKILL of `up`:\n{_describe(alive)}"

    # Same data dir (and ports) again: everything comes back with the data.
    with assistants_up(tmp_path, data_dir, ports) as up:
        assert _retrieve_assistant(up, created["id"]) == created
        _terminate(up)


def test_up_refuses_a_temporal_port_in_use(tmp_path: Path) -> None:
    ports = UpPorts.pick()
    with socket.socket() as taken:
        # Every server binds with SO_REUSEADDR: free_port() leaves its ports in TIME_WAIT.
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind((HOST, ports.temporal_ui))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "up", "--port", str(ports.api),
             "--temporal-port", str(ports.temporal), "--temporal-ui-port", str(ports.temporal_ui),
             "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"port {ports.temporal_ui} (for the Temporal UI) is already in use" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before starting anything

