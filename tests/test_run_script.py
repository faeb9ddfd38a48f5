"""scripts/run.sh runs pip only when pyproject.toml or constraints.txt changed.

The script runs from a copy of the repository's layout whose `.venv` holds two stubs:
`python` records each pip invocation (and fails on demand), `assistants` prints its
arguments. So the real script is tested in a second, with no network and no install.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON_STUB = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../pip.log"
[ ! -e "$(dirname "$0")/../pip-fails" ]
"""
PIP_RUNS = ["-m pip install --quiet --upgrade pip -c constraints.txt",
            "-m pip install --quiet -e . -c constraints.txt"]
ASSISTANTS_STUB = """#!/bin/sh
echo "assistants $*"
"""


def _repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run.sh", tmp_path / "scripts" / "run.sh")
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", PYTHON_STUB), ("assistants", ASSISTANTS_STUB)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def _run(repo: Path) -> tuple[int, list[str], str]:
    """Exit code, the pip runs it made, its output."""
    log = repo / ".venv" / "pip.log"
    log.unlink(missing_ok=True)
    result = subprocess.run(["bash", str(repo / "scripts" / "run.sh"), "--port", "3001"],
                            capture_output=True, text=True, timeout=30, check=False)
    pip = log.read_text().splitlines() if log.exists() else []
    return result.returncode, pip, result.stdout + result.stderr


def test_run_sh_installs_only_when_the_dependencies_changed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    code, pip, out = _run(repo)
    assert code == 0, out
    assert pip == PIP_RUNS
    assert out == "assistants up --port 3001\n"  # then it starts the stack with the args

    code, pip, out = _run(repo)
    assert (code, pip, out) == (0, [], "assistants up --port 3001\n")  # nothing changed

    with (repo / "constraints.txt").open("a") as constraints:
        constraints.write("some-new-pin==1.0\n")
    assert _run(repo)[1] == PIP_RUNS
    assert _run(repo)[1] == []

    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "\n# x\n")
    assert _run(repo)[1] == PIP_RUNS


def test_run_sh_tries_again_after_a_failed_install(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / ".venv" / "pip-fails").touch()
    code, pip, out = _run(repo)
    assert code != 0 and len(pip) == 1 and "assistants up" not in out  # stopped at pip
    (repo / ".venv" / "pip-fails").unlink()
    code, pip, out = _run(repo)
    assert code == 0 and pip == PIP_RUNS, out

