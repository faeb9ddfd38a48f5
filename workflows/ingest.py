"""IngestVectorStoreFile: one durable workflow per vector-store file (and attempt).

in_progress -> (parse, chunk, embed, store: one idempotent activity) -> completed
            \\-> failed with last_error {code, message}
Cancellation (batch cancel) is recorded by the API before it cancels us; the
activity's final write checks the row is still ours, so nothing resurrects it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from workflows.ingest_types import FailIngestInput, IngestInput, IngestResult
from workflows.types import ERROR_TYPES, error_code

with workflow.unsafe.imports_passed_through():
    from activities.ingest import IngestActivities

PROCESS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
    # Embedding outages get a few tries; a broken file gets none.
    maximum_attempts=5,
    non_retryable_error_types=[ERROR_TYPES["unsupported_file"], ERROR_TYPES["invalid_file"]],
)
DB_WRITE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                             maximum_interval=timedelta(seconds=5))


@workflow.defn(name="IngestVectorStoreFile")
class IngestFileWorkflow:
    @workflow.run
    async def run(self, input: IngestInput) -> IngestResult:
        try:
            return await workflow.execute_activity_method(
                IngestActivities.ingest_file,
                input,
                # Large PDFs and many embedding batches take a while; the
                # heartbeat (every few seconds) is what detects a dead worker.
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=PROCESS_RETRY,
            )
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                raise
            code, message = "server_error", str(error.cause or error)
            if isinstance(error.cause, ApplicationError):
                code = error_code(error.cause.type)
                message = error.cause.message
            workflow.logger.warning("ingestion of %s into %s failed: %s", input.file_id,
                                    input.vector_store_id, code)
            await workflow.execute_local_activity_method(
                IngestActivities.fail_ingest,
                FailIngestInput(input.vector_store_id, input.file_id, input.ingest_id,
                                {"code": code, "message": message}),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=DB_WRITE_RETRY,
            )
            return IngestResult("failed")
