"""Real client libraries against the server: LangChain, LlamaIndex and agency-swarm.

Each client is a small script in tests/clients/<name>/run.py doing what that library's docs
show (an assistant with a function tool and file_search, a run, the tool outputs, the
answer), run by a venv of its own made from tests/clients/<name>/requirements.txt (every
package pinned), so their pins never touch the product's. The session's app is served over
real HTTP (`live_server_url`) because the libraries build their own `openai` clients from
OPENAI_BASE_URL; the scripted model (tests/fake_llm.py) reads the scripts' directives.

The venvs live in tests/clients/.venvs (CLIENT_VENVS_DIR overrides it) and are reused while
their requirements file (and Python) is unchanged. The selected ones are made at once, in the
background, as the first test here sets up: about 25-50 s for the three on 2 cores, spent
while the stack starts when this module runs first. By hand, against any server:
`OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... tests/clients/.venvs/langchain/bin/python tests/clients/langchain/run.py`.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.requirements import missing

pytestmark = pytest.mark.usefixtures("worker")

CLIENTS_DIR = Path(__file__).parent / "clients"
CLIENTS = ("langchain", "llamaindex", "agency_swarm")
VENVS_DIR = Path(os.environ.get("CLIENT_VENVS_DIR") or CLIENTS_DIR / ".venvs")
INSTALL_TIMEOUT_SECONDS = 900
SCRIPT_TIMEOUT_SECONDS = 300
STAMP = ".requirements-sha256"  # written last: a venv without it is not ready


class Install:
    """One client's venv: ready already, or being made by a background process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.venv = VENVS_DIR / name
        self.requirements = CLIENTS_DIR / name / "requirements.txt"
        self.log = VENVS_DIR / f"{name}.install.log"
        # The interpreter's version is part of the key: a venv is tied to its Python.
        self.digest = hashlib.sha256(
            self.requirements.read_bytes() + sys.version.encode()).hexdigest()
        self.proc: subprocess.Popen[bytes] | None = None
        VENVS_DIR.mkdir(parents=True, exist_ok=True)
        self.lock = (VENVS_DIR / f"{name}.lock").open("w")
        self.started = time.monotonic()

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def ready(self) -> bool:
        stamp = self.venv / STAMP
        return self.python.exists() and stamp.exists() and stamp.read_text() == self.digest

    def start(self) -> None:
        """Start making the venv unless it is ready; returns at once, unless another pytest
        session is making it (then this one waits for that, and takes its venv)."""
        fcntl.flock(self.lock, fcntl.LOCK_EX)  # held until this session's install ends
        if self.ready():
            self.lock.close()
            return
        shutil.rmtree(self.venv, ignore_errors=True)
        # One shell line so the pip install follows the venv creation even while the
        # event loop is blocked (the embedded stack starts synchronously). Measured on 2
        # cores, the three at once: ~25 s (~50 s one after another), against ~85 s with
        # each venv's own pip (ensurepip, then Python 3.11's older pip compiling every
        # module). So: no pip in the venv, the product venv's pip installs into it
        # (`--python`), modules are compiled when first imported, binary wheels only
        # (nothing is ever built), and pip's cache keeps the downloads.
        q = shlex.quote
        command = (f"{q(sys.executable)} -m venv --without-pip {q(str(self.venv))} && "
                   f"{q(sys.executable)} -m pip --python {q(str(self.python))} install "
                   f"--disable-pip-version-check --no-compile --only-binary=:all: "
                   f"-r {q(str(self.requirements))}")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(["/bin/sh", "-c", command], stdout=log,
                                         stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    async def wait(self) -> Path:
        """The venv's python once it is ready; a failed install fails (in CI) or skips."""
        if self.proc is not None:
            try:
                code = await asyncio.to_thread(self.proc.wait, INSTALL_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = -1
            if code != 0:
                tail = self.log.read_text(errors="replace")[-3000:]
                missing(f"installing {self.requirements} failed ({code}); "
                        f"{self.log}:\n{tail}")
            (self.venv / STAMP).write_text(self.digest)
            self.proc = None
            self.lock.close()
            print(f"{self.name}: venv made in {time.monotonic() - self.started:.0f} s")
        return self.python

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.lock.close()


@pytest.fixture(scope="session", autouse=True)
def client_venvs(request: pytest.FixtureRequest) -> Iterator[dict[str, Install]]:
    """Start the selected clients' installs before the stack starts, so they overlap.
    Autouse in this module only, and session-scoped so it is set up before the session
    fixtures (the stack) of the first test here."""
    selected = {item.callspec.params["client"] for item in request.session.items
                if isinstance(item, pytest.Function) and item.path == Path(__file__)}
    installs = {name: Install(name) for name in CLIENTS if name in selected}
    for install in installs.values():
        install.start()
    try:
        yield installs
    finally:
        for install in installs.values():
            install.stop()


@pytest.mark.parametrize("client", CLIENTS)
async def test_client_library_runs_tools_and_file_search(
    client: str, client_venvs: dict[str, Install], live_server_url: str, tmp_path: Path
) -> None:
    python = await client_venvs[client].wait()
    env = {**os.environ, "OPENAI_BASE_URL": f"{live_server_url}/v1",
           "OPENAI_API_KEY": "test-key", "NO_PROXY": "127.0.0.1,localhost"}
    # The venv was installed without bytecode: let the first run write it, once.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(python), str(CLIENTS_DIR / client / "run.py"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SCRIPT_TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(f"{client} timed out after {SCRIPT_TIMEOUT_SECONDS} s\n"
                    f"stdout:\n{out.decode()}\nstderr:\n{err.decode()[-5000:]}")
    print(f"{client}: script ran in {time.monotonic() - started:.1f} s")
    stdout = out.decode()
    assert proc.returncode == 0 and stdout.startswith("PASS"), (
        f"{client} exited {proc.returncode}\nstdout:\n{stdout}\n"
        f"stderr:\n{err.decode()[-5000:]}")
