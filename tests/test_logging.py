"""core/logging.py: LOG_FORMAT=json lines with run/thread ids, and secrets masked."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.logging import JsonFormatter, TextFormatter, configure_logging, redact

ROOT = Path(__file__).resolve().parent.parent


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("activities.runs", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_ids_from_extras() -> None:
    line = JsonFormatter().format(_record("run %s moved", "run_1", run_id="run_1",
                                          thread_id="thread_1", unrelated={"x": 1}))
    entry = json.loads(line)
    assert entry["message"] == "run run_1 moved"
    assert (entry["level"], entry["logger"]) == ("INFO", "activities.runs")
    assert (entry["run_id"], entry["thread_id"]) == ("run_1", "thread_1")
    assert "unrelated" not in entry  # only the named extras, never the whole record
    assert entry["ts"].endswith("+00:00")
    assert "run_id" not in json.loads(JsonFormatter().format(_record("no ids")))


def test_exceptions_are_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


@pytest.mark.parametrize(("text", "secret"), [
    ("connect postgresql+psycopg://postgres:hunter2@db:5432/app", "hunter2"),
    ("redis://:s3cr3t@redis:6379/0 is down", "s3cr3t"),
    ("headers {'Authorization': 'Bearer sk-live-123'}", "sk-live-123"),
    ("S3_SECRET_KEY=abc123 and MODEL_API_KEY: 'sk-xyz'", "abc123"),
    ("S3_SECRET_KEY=abc123 and MODEL_API_KEY: 'sk-xyz'", "sk-xyz"),
    ("password=pw1&user=u", "pw1"),
])
def test_secrets_are_masked(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "***" in redact(text)
    assert secret not in JsonFormatter().format(_record(text))
    assert secret not in TextFormatter().format(_record(text))


def test_harmless_text_is_left_alone() -> None:
    text = "run run_1 used max_tokens=4096 at http://fake-llm:8000/v1 (user id u1)"
    assert redact(text) == text


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(SystemExit, match="LOG_FORMAT"):
        configure_logging(log_format="xml")


def test_log_format_json_end_to_end() -> None:
    """A fresh process, configured as `assistants` configures itself."""
    code = (
        "import logging; from launcher.cli import configure_logging; configure_logging(); "
        "logging.getLogger('worker').info('connected to %s', 'postgres://u:pw@db/app', "
        "extra={'run_id': 'run_9', 'thread_id': 'thread_9'}); "
        "from uvicorn.config import LOGGING_CONFIG; "
        "print(LOGGING_CONFIG['formatters']['access'])"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "LOG_LEVEL": "info"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    entry = json.loads(proc.stderr.strip().splitlines()[-1])
    assert entry["message"] == "connected to postgres://u:***@db/app"
    assert (entry["run_id"], entry["thread_id"]) == ("run_9", "thread_9")
    assert "core.logging.JsonFormatter" in proc.stdout  # uvicorn's own logs are JSON too
