"""Process logging: text (default) or one JSON object per line (LOG_FORMAT=json).

JSON lines carry `ts`, `level`, `logger`, `message`, the ids passed as extras
(`logger.info("...", extra={"run_id": ..., "thread_id": ...})`) and, inside Temporal
activities and workflows, the SDK's `temporal_activity` / `temporal_workflow` context.
Only those named extras are written, never the whole record, and in both formats
credentials in URLs (`scheme://user:PASSWORD@`), bearer tokens and `key=value` pairs
with a secret-sounding key are masked.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Extras copied into JSON lines when a record has them.
CONTEXT_FIELDS = ("run_id", "thread_id", "assistant_id", "message_id", "step_id",
                  "workflow_id", "activity", "attempt", "temporal_activity",
                  "temporal_workflow")
MASK = "***"
_SECRETS = [
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), rf"\g<1>{MASK}@"),
    (re.compile(r"(?i)(\bbearer\s+)[^\s'\",]+"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)"
                r"(?:[_-]?key)?['\"]?\s*[=:]\s*['\"]?)[^\s'\",}&]+"), rf"\g<1>{MASK}"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # Redacted after serialising, so masking also covers ids and extras.
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(level: str | None = None, log_format: str | None = None) -> None:
    """Root logging from LOG_LEVEL (default INFO) and LOG_FORMAT (`text` or `json`).

    Like `logging.basicConfig`, a no-op when the root logger already has handlers.
    """
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    log_format = (log_format or os.environ.get("LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        raise SystemExit(f"error: LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                         f"not {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    if level != "DEBUG":
        # Alembic announces each of its plugins at INFO on every start: noise, not news.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if log_format == "json":
        _uvicorn_logs_as_json()


def _uvicorn_logs_as_json() -> None:
    """uvicorn installs its own (text) handlers when it starts: make those JSON too."""
    try:
        from uvicorn.config import LOGGING_CONFIG
    except ImportError:  # pragma: no cover - uvicorn is a dependency
        return
    for name in ("default", "access"):
        LOGGING_CONFIG["formatters"][name] = {"()": f"{__name__}.JsonFormatter"}
