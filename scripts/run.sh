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
# constraints.txt: the versions CI tested (scripts/lock.sh refreshes it).
.venv/bin/python -m pip install --quiet --upgrade pip -c constraints.txt
.venv/bin/python -m pip install --quiet -e . -c constraints.txt
exec .venv/bin/assistants up "$@"
