"""workflows.retries: the retry rules the workflow applies to the model turn itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from workflows.retries import failure_cause, retry_delay
from workflows.types import RetrySettings

RETRY = RetrySettings(initial_interval_seconds=1.0, maximum_interval_seconds=5.0,
                      maximum_attempts=6)
RATE_LIMITED = ApplicationError("Slow down", type="RateLimited")


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0),
                                                (5, 5.0)])
def test_backoff_doubles_up_to_the_maximum(attempt: int, delay: float) -> None:
    assert retry_delay(RETRY, attempt, RATE_LIMITED) == delay


def test_no_retry_after_the_last_attempt() -> None:
    assert retry_delay(RETRY, 6, RATE_LIMITED) is None
    unlimited = RetrySettings(maximum_attempts=0, maximum_interval_seconds=30.0)
    assert retry_delay(unlimited, 1000, RATE_LIMITED) == 30.0


def test_the_providers_retry_after_wins_over_the_backoff() -> None:
    told = ApplicationError("Slow down", type="RateLimited",
                            next_retry_delay=timedelta(seconds=12))
    assert retry_delay(RETRY, 1, told) == 12.0
    assert retry_delay(RETRY, 6, told) is None  # but not over the attempt limit


@pytest.mark.parametrize("cause", [
    ApplicationError("Prompt is too long", type="InvalidPrompt"),  # by type
    ApplicationError("Bad answer", type="ModelContract", non_retryable=True),  # by flag
    CancelledError("cancelled"),
])
def test_errors_no_attempt_can_fix_are_not_retried(cause: BaseException) -> None:
    assert retry_delay(RETRY, 1, cause) is None


def test_a_timed_out_attempt_is_retried() -> None:
    timed_out = TimeoutError("timed out", type=TimeoutType.START_TO_CLOSE,
                             last_heartbeat_details=[])
    assert retry_delay(RETRY, 1, timed_out) == 1.0


def test_failure_cause_unwraps_a_regular_activitys_failure() -> None:
    wrapped = ActivityError("activity failed", scheduled_event_id=5, started_event_id=6,
                            identity="worker", activity_type="model_turn",
                            activity_id="1", retry_state=RetryState.NON_RETRYABLE_FAILURE)
    wrapped.__cause__ = RATE_LIMITED
    assert failure_cause(wrapped) is RATE_LIMITED
    assert failure_cause(RATE_LIMITED) is RATE_LIMITED
