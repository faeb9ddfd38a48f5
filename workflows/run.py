"""AssistantRun: one durable workflow per run (workflow id = run id).

queued -> in_progress -> (model turn) -> completed
                          \\-> requires_action -> (tool outputs) -> queued -> in_progress -> ...
Every state change is written to Postgres by an activity; the workflow only
decides what happens next, so a crashed worker resumes exactly where it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ActivityCancellationType

from workflows.retries import NON_RETRYABLE_TYPES, failure_cause, retry_delay
from workflows.types import (
    EndStatus,
    FileSearchInput,
    FinishInput,
    ModelTurnInput,
    ModelTurnResult,
    RecordToolOutputsInput,
    RunInput,
    RunResult,
    RunState,
    RunStatus,
    SubmitToolOutputs,
    closing_failure,
    error_code,
)

with workflow.unsafe.imports_passed_through():
    from activities.file_search import FileSearchActivities
    from activities.runs import RunActivities

# Short Postgres writes: local activities (no task-queue round trip).
DB_WRITE_TIMEOUT = timedelta(seconds=10)
DB_WRITE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                             maximum_interval=timedelta(seconds=5))
# A run whose model keeps calling tools ends failed after this many turns, so its history
# stays far below Temporal's limits (warned at 10,240 events, refused at 51,200): a turn
# costs at most ~12 events (task, marker, update, outputs marker, file_search), so 200
# turns ~2,400, plus 3 events per task heartbeat while the model works (one per 4 s at the
# default task timeout; RUN_EXPIRY_SECONDS's cap keeps that under ~11,000). No
# continue-as-new: the bound holds without one, and a run's id must stay its workflow's.
MAX_TURNS = 200


@workflow.defn(name="AssistantRun")
class AssistantRunWorkflow:
    def __init__(self) -> None:
        self._status: RunStatus = "queued"
        self._turn = 0
        self._pending: list[str] = []
        self._outputs_recorded = False
        self._submission_in_flight = False
        self._last_error: dict[str, str] | None = None

    @workflow.run
    async def run(self, input: RunInput) -> RunResult:
        self._input = input
        result = await self._run()
        # An update or signal still running (e.g. a late tool-outputs submission's write)
        # finishes before the workflow does: Temporal would otherwise drop it midway.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if input.close_as_failed and result.status in ("failed", "expired"):
            # The row is written (finish_run): only the workflow's close status is left.
            raise closing_failure(result.status, self._last_error)
        return result

    async def _run(self) -> RunResult:
        try:
            while True:
                if self._turn >= MAX_TURNS:
                    return await self._finish("failed", {"code": "server_error", "message": (
                        f"The run ended after {MAX_TURNS} model turns without an answer: "
                        "the model kept calling tools.")})
                self._turn += 1
                result = await self._model_turn()
                if result.kind == "expired":
                    return await self._finish("expired")
                if result.kind != "tool_calls":
                    self._status = "completed" if result.kind == "message" else "incomplete"
                    return RunResult(self._status)
                if result.file_search:
                    await self._file_search()
                if not result.tool_call_ids:
                    continue  # only server-side tools: the model reads their results next
                self._status, self._pending = "requires_action", result.tool_call_ids
                if not await self._wait_for_outputs():
                    return await self._finish("expired")
                self._outputs_recorded = False
        except asyncio.CancelledError:
            # Cancellation reached us (a running model turn is cancelled with it);
            # record it, then let Temporal show the run as cancelled.
            await asyncio.shield(asyncio.ensure_future(self._finish("cancelled")))
            raise
        except (ActivityError, ApplicationError, CancelledError,
                TemporalTimeoutError) as error:
            # A regular activity's failure arrives wrapped in an ActivityError; a local
            # activity's (the model turn, see _model_turn) as its own cause.
            cause = failure_cause(error)
            retry_state = error.retry_state if isinstance(error, ActivityError) else None
            if isinstance(cause, CancelledError):
                # The workflow was cancelled while the model was working: the
                # activity's cancellation arrives here, not as asyncio's.
                await self._finish("cancelled")
                raise asyncio.CancelledError() from error
            return await self._finish_failed(cause, retry_state)

    async def _model_turn(self) -> ModelTurnResult:
        """One model call; the activity also moves the run from queued to in_progress."""
        self._status = "in_progress"
        retry = self._input.retry
        remaining = self._input.expires_at - workflow.now().timestamp()
        if remaining <= 0:
            return ModelTurnResult("expired")
        turn = ModelTurnInput(self._input.run_id, self._turn)
        call_timeout = timedelta(seconds=retry.model_call_timeout_seconds)
        # On cancel, wait until the call has really stopped: what it streamed up to then
        # is what the cancelled message keeps.
        on_cancel = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        if self._input.local_model_turn:
            # A local activity: the worker runs the turn inside this workflow task, so a
            # text run is one workflow task instead of two plus an activity task (half the
            # Temporal CPU per run, one hand-off less before the first token). The price: a
            # cancel or update reaches the workflow at the task's next heartbeat (80% of
            # the API's task timeout: 5 s unless RUN_TASK_TIMEOUT_SECONDS says otherwise,
            # not Temporal's 10 s), and a restarted worker runs the turn again (model_turn
            # finds what an earlier run recorded).
            return await self._local_model_turn(turn, call_timeout, on_cancel)
        # Runs started before the local-activity turn replay the regular activity they ran.
        return await workflow.execute_activity_method(
            RunActivities.model_turn, turn, start_to_close_timeout=call_timeout,
            # The whole turn, retries included, must end before the run expires.
            schedule_to_close_timeout=timedelta(seconds=remaining),
            heartbeat_timeout=timedelta(seconds=retry.heartbeat_timeout_seconds),
            cancellation_type=on_cancel,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=retry.initial_interval_seconds),
                maximum_interval=timedelta(seconds=retry.maximum_interval_seconds),
                maximum_attempts=retry.maximum_attempts,
                non_retryable_error_types=list(NON_RETRYABLE_TYPES),
            ))

    async def _local_model_turn(self, turn: ModelTurnInput, call_timeout: timedelta,
                                on_cancel: ActivityCancellationType) -> ModelTurnResult:
        """The model turn as a local activity, retried here rather than by Temporal: core
        keeps retrying a local activity past its schedule_to_close_timeout, and the run's
        deadline must hold. A backoff is a durable timer, and costs history only on a
        failure; the happy path records one marker."""
        attempt = 1
        while True:
            remaining = timedelta(seconds=self._input.expires_at - workflow.now().timestamp())
            if remaining <= timedelta(0):
                return ModelTurnResult("expired")
            try:
                return await workflow.execute_local_activity_method(
                    RunActivities.model_turn, dataclasses.replace(turn, attempt=attempt),
                    start_to_close_timeout=min(call_timeout, remaining),
                    retry_policy=RetryPolicy(maximum_attempts=1), cancellation_type=on_cancel)
            except (ActivityError, ApplicationError, TemporalTimeoutError) as error:
                cause = failure_cause(error)
                if isinstance(cause, TemporalTimeoutError) and remaining < call_timeout:
                    return ModelTurnResult("expired")  # the run's deadline cut the call
                delay = retry_delay(self._input.retry, attempt, cause)
                if delay is None:
                    raise
            if workflow.now().timestamp() + delay >= self._input.expires_at:
                # The next attempt would start after the run expired (what Temporal's own
                # retries do with a schedule_to_close_timeout).
                return ModelTurnResult("expired")
            await workflow.sleep(delay)
            attempt += 1

    async def _file_search(self) -> None:
        await workflow.execute_activity_method(
            FileSearchActivities.file_search, FileSearchInput(self._input.run_id, self._turn),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1),
                                     maximum_interval=timedelta(seconds=10), maximum_attempts=5),
        )

    async def _wait_for_outputs(self) -> bool:
        """Wait for tool outputs until the run expires; False if it expired first."""
        remaining = self._input.expires_at - workflow.now().timestamp()
        try:
            await workflow.wait_condition(lambda: self._outputs_recorded,
                                          timeout=max(remaining, 0.001))
        except TimeoutError:
            return self._outputs_recorded
        return True

    async def _finish(self, status: EndStatus,
                      last_error: dict[str, str] | None = None) -> RunResult:
        await workflow.execute_local_activity_method(
            RunActivities.finish_run, FinishInput(self._input.run_id, status, last_error),
            start_to_close_timeout=DB_WRITE_TIMEOUT, retry_policy=DB_WRITE_RETRY)
        self._status, self._last_error = status, last_error
        return RunResult(status)

    async def _finish_failed(self, cause: BaseException | None,
                             retry_state: RetryState | None) -> RunResult:
        timed_out = (isinstance(cause, TemporalTimeoutError)
                     and cause.type == TimeoutType.SCHEDULE_TO_CLOSE)
        # Retries also stop when the next attempt would start after expires_at; the cause
        # is then the last attempt's error (e.g. RateLimited), with retry_state TIMEOUT.
        if timed_out or retry_state == RetryState.TIMEOUT:
            # The turn, retries included, could not finish before expires_at.
            return await self._finish("expired")
        code, message = "server_error", str(cause)
        if isinstance(cause, ApplicationError):
            code = error_code(cause.type)
            message = cause.message
        workflow.logger.warning("run %s failed: %s", self._input.run_id, code)
        return await self._finish("failed", {"code": code, "message": message})

    # --- tool outputs: an update (validated, synchronous) and a signal (operators) ---
    @workflow.update(name="submit_tool_outputs")
    async def submit_tool_outputs(self, outputs: SubmitToolOutputs) -> RunState:
        if self._status != "requires_action":
            # Postgres said requires_action (the API checked) before this workflow saw its
            # model turn end: wait for it to catch up, then check the outputs here.
            self._submission_in_flight = True
            await workflow.wait_condition(lambda: not self._turn_may_be_running())
            self._submission_in_flight = False
            try:
                self._check_outputs(outputs)
            except ValueError as rejected:
                raise ApplicationError(str(rejected), type="InvalidToolOutputs",
                                       non_retryable=True) from None
        await self._accept_outputs(outputs)
        return self.state()

    async def _accept_outputs(self, outputs: SubmitToolOutputs) -> None:
        # Set before the first await: a second submission racing this one is rejected.
        self._submission_in_flight = True
        await workflow.execute_local_activity_method(
            RunActivities.record_tool_outputs,
            RecordToolOutputsInput(self._input.run_id, self._turn, outputs.tool_outputs),
            start_to_close_timeout=DB_WRITE_TIMEOUT, retry_policy=DB_WRITE_RETRY,
        )
        self._status, self._pending, self._outputs_recorded = "queued", [], True
        self._submission_in_flight = False

    @submit_tool_outputs.validator
    def validate_tool_outputs(self, outputs: SubmitToolOutputs) -> None:
        """Rejects synchronously (nothing enters the history) whatever is already wrong;
        outputs arriving while a model turn is still ending are checked by the handler."""
        if self._submission_in_flight or not (self._status == "requires_action"
                                              or self._turn_may_be_running()):
            raise ValueError(f"Runs in status \"{self._status}\" do not accept tool outputs.")
        if self._status == "requires_action":
            self._check_outputs(outputs)

    def _turn_may_be_running(self) -> bool:
        """In a model turn, or before the first: a workflow task that failed (e.g. because
        this update arrived while the model turn ran as a local activity) is retried from
        the start, so an update can be delivered before run() has begun turn 1."""
        return self._status == "in_progress" or (self._status == "queued" and self._turn == 0)

    def _check_outputs(self, outputs: SubmitToolOutputs) -> None:
        if self._status != "requires_action":
            raise ValueError(f"Runs in status \"{self._status}\" do not accept tool outputs.")
        given = [o.tool_call_id for o in outputs.tool_outputs]
        for call_id in given:
            if call_id not in self._pending:
                raise ValueError(f"Invalid tool_call_id: {call_id}. No tool call with this id "
                                 "awaits an output.")
        if len(set(given)) != len(given):
            raise ValueError("Duplicate tool_call_id in tool_outputs.")
        if sorted(given) != sorted(self._pending):
            raise ValueError(f"Expected tool outputs for call_ids {self._pending}, got {given}.")

    @workflow.signal(name="submit_tool_outputs_signal")
    async def submit_tool_outputs_signal(self, outputs: SubmitToolOutputs) -> None:
        """For operators (Temporal UI/CLI): same checks, but a bad signal is only logged."""
        try:
            self._check_outputs(outputs)
        except ValueError as rejected:
            workflow.logger.warning("ignored tool outputs signal: %s", rejected)
            return
        await self._accept_outputs(outputs)

    @workflow.query(name="state")
    def state(self) -> RunState:
        return RunState(self._status, self._turn, list(self._pending))
