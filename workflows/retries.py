"""When to try a failed model turn again: Temporal's retry rules, applied by the workflow.

The model turn runs as a local activity, whose retries the workflow drives itself (see
AssistantRunWorkflow._local_model_turn); these are the same rules a RetryPolicy would
apply, so the settings in RetrySettings keep their meaning.
"""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from workflows.types import ERROR_TYPES, RetrySettings

# Errors no attempt can fix, whatever the error says of itself.
NON_RETRYABLE_TYPES = (ERROR_TYPES["invalid_prompt"],)  # a tuple: its order goes into commands
BACKOFF_COEFFICIENT = 2.0  # Temporal's default


def failure_cause(error: BaseException) -> BaseException | None:
    """What went wrong: a regular activity's failure comes wrapped in an ActivityError, a
    local activity's as the failure itself."""
    return error.cause if isinstance(error, ActivityError) else error


def retry_delay(retry: RetrySettings, attempt: int, cause: BaseException | None) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None if there is none."""
    if isinstance(cause, CancelledError):
        return None
    if isinstance(cause, ApplicationError) and (cause.non_retryable
                                                or cause.type in NON_RETRYABLE_TYPES):
        return None
    if 0 < retry.maximum_attempts <= attempt:
        return None
    if isinstance(cause, ApplicationError) and cause.next_retry_delay is not None:
        return cause.next_retry_delay.total_seconds()  # e.g. the provider's Retry-After
    backoff = retry.initial_interval_seconds * BACKOFF_COEFFICIENT ** (attempt - 1)
    return min(backoff, retry.maximum_interval_seconds)
