#!/usr/bin/env bash
# Runs the product on a fresh machine with only Python 3.11+: creates .venv,
# installs the project, and starts `assistants up` (embedded Postgres, Redis,
# S3 and Temporal with its web UI, then the API on :3000 and a worker).
# Extra arguments go to `assistants up` (e.g. --port 3001 --data-dir ./data).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip runs only when what it installs from changed since its last success here: the
# stamp holds a checksum of pyproject.toml and constraints.txt (the versions CI tested;
# scripts/lock.sh refreshes it). The project is installed editable, so code changes
# need no reinstall. Delete .venv/.run-sh-installed to force one.
STAMP=.venv/.run-sh-installed
WANTED="$(cat pyproject.toml constraints.txt | cksum)"
if [ ! -x .venv/bin/assistants ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip -c constraints.txt
  .venv/bin/python -m pip install --quiet -e . -c constraints.txt
  echo "$WANTED" > "$STAMP"
fi
exec .venv/bin/assistants up "$@"
