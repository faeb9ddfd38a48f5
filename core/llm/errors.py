"""Provider failures, classified the way a run reports them (`last_error.code`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal


class ProviderError(Exception):
    """An LLM call failed. `retryable` decides whether Temporal tries again."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def code(self) -> Literal["rate_limit_exceeded", "invalid_prompt", "server_error"]:
        """The run's `last_error.code` if this error ends the run."""
        if self.status == 429:
            return "rate_limit_exceeded"
        if self.status is not None and 400 <= self.status < 500 and self.status not in (408, 409):
            return "invalid_prompt"
        return "server_error"

    @property
    def retryable(self) -> bool:
        return self.code != "invalid_prompt"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds, when the server sent a number (HTTP dates are ignored)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
