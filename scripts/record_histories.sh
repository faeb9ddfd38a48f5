#!/usr/bin/env bash
# Records the histories of runs taking every path of the workflows (text, retried turn,
# outputs by update and by signal, cancel, failure, file_search with ingestion, and a
# parked run still waiting for outputs) into tests/histories/NAME/, on the real stack.
# Do it when a workflow change alters its commands (docs/versioning.md), then add NAME
# to RECORDED in tests/test_workflow_replay.py: CI replays every recorded version.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/record_histories.sh NAME (a new directory under tests/histories/)}"
if [ -e "tests/histories/$name" ]; then
  echo "tests/histories/$name exists; choose a new name" >&2
  exit 2
fi
RECORD_HISTORIES="$name" exec .venv/bin/python -m pytest -q \
  "tests/test_workflow_replay.py::test_run_histories_replay_in_the_sandbox_and_without_it"
