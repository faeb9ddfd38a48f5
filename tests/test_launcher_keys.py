"""`assistants keys` on the embedded stack's data dir, with no DATABASE_URL to copy.

The command runs as a user runs it (a subprocess, in a directory without .env, with no
service URL in the environment) against a data dir whose Postgres is running (as under
`assistants up`, which picks a new port at each start) or stopped. Only Postgres is
started here, so these stay quick; tests/test_launcher.py does the same against a whole
running `assistants up`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from launcher.embedded import EmbeddedStack
from tests.test_launcher import _env

# Starts the embedded stack as child processes (the unit/integration split: tests/conftest.py).
pytestmark = pytest.mark.integration

KEYS_TIMEOUT = 120


def keys(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher.cli", "keys", *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=KEYS_TIMEOUT,
                          check=False)


def create(cwd: Path, *args: str) -> tuple[str, str]:
    """(key id, key) of a new key."""
    result = keys(cwd, "create", *args)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("sk-proj-"), result.stdout
    found = re.search(r"Created (\S+) for project", result.stderr)
    assert found, result.stderr
    return found[1], key


def _postgres(data_dir: Path) -> tuple[EmbeddedStack, str]:
    """The data dir's Postgres alone, as `assistants up` starts it; (stack, psycopg URL)."""
    stack = EmbeddedStack(data_dir)
    url = stack.start_postgres()()["DATABASE_URL"].replace("+psycopg", "")
    return stack, url


def _stored_projects(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT project_id FROM api_keys ORDER BY seq")]


def test_keys_on_a_stopped_stack_start_its_postgres_for_the_command_only(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "assistants-data"  # the default, relative to the working directory
    stack, _ = _postgres(data_dir)  # a first `assistants up` made it; now it is stopped
    stack.stop()

    key_id, key = create(tmp_path, "--project", "team-a", "--name", "ci")
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "its Postgres still runs"
    listed = keys(tmp_path, "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(key_id)]
    assert "team-a" in row and f"{key[:12]}" in row and row.endswith("active")

    revoked = keys(tmp_path, "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {key_id}" in revoked.stdout
    listed = keys(tmp_path, "list")
    assert "revoked" in next(line for line in listed.stdout.splitlines()
                             if line.startswith(key_id))

    # The keys are in that data dir's own database, seen by the next `assistants up`.
    stack, url = _postgres(data_dir)
    try:
        assert _stored_projects(url) == ["team-a"]
    finally:
        stack.stop()


def test_keys_use_a_running_stacks_postgres_and_leave_it_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    stack, url = _postgres(data_dir)
    try:
        key_id, _ = create(tmp_path, "--project", "team-b", "--data-dir", str(data_dir))
        assert stack.processes["postgres"].running()
        assert _stored_projects(url) == ["team-b"]  # in the very server that runs
        assert key_id in keys(tmp_path, "list", "--data-dir", str(data_dir)).stdout
    finally:
        stack.stop()


def test_keys_never_use_another_postgres_on_a_stale_pid_files_port(tmp_path: Path) -> None:
    """After a `kill -9`, postmaster.pid stays behind; its port may since serve another
    data dir's Postgres, which must not receive this data dir's keys."""
    mine, other = tmp_path / "mine", tmp_path / "other"
    stack, _ = _postgres(mine)
    stack.stop()
    other_stack, other_url = _postgres(other)
    try:
        lines = (other / "postgres" / "postmaster.pid").read_text().splitlines()
        dead_pid = next(pid for pid in range(4_000_000, 3_000_000, -1)
                        if not psutil.pid_exists(pid))
        # Pid, data dir, start time, port: the other server's port, a dead server's pid.
        stale = [str(dead_pid), str(mine / "postgres"), lines[2], lines[3]]
        (mine / "postgres" / "postmaster.pid").write_text("\n".join(stale) + "\n")

        create(tmp_path, "--project", "team-c", "--data-dir", str(mine))
        assert "api_keys" not in _tables(other_url)  # the other server got nothing
    finally:
        other_stack.stop()
    stack, url = _postgres(mine)
    try:
        assert _stored_projects(url) == ["team-c"]
    finally:
        stack.stop()


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_keys_without_a_stack_or_database_url_say_what_to_do(tmp_path: Path) -> None:
    result = keys(tmp_path, "list")
    assert result.returncode == 1
    assert f"no embedded stack in {tmp_path / 'assistants-data'}" in result.stderr
    assert "assistants up" in result.stderr and "DATABASE_URL" in result.stderr
    assert not (tmp_path / "assistants-data").exists()  # nothing made by mistake

