"""The Temporal worker: runs the run workflows and their activities."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.file_search import FileSearchActivities
from activities.ingest import IngestActivities
from activities.metrics import ActivityMetricsInterceptor, serve_metrics
from activities.runs import RunActivities
from core.db import create_engine, create_sessionmaker
from core.embeddings import embedder_from_settings
from core.events import RunEvents
from core.llm.router import ProviderRouter
from core.rawdb import RawPool
from core.redis_client import create_redis
from core.settings import Settings
from core.storage import ObjectStorage
from core.tracing import temporal_interceptors
from workflows.ingest import IngestFileWorkflow
from workflows.run import AssistantRunWorkflow

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    """Temporal's sandbox (WORKFLOW_SANDBOX=true) or none. The sandbox re-imports each
    workflow's modules for every new run; it is kept for CI's replay test, which runs real
    histories through it (tests/test_workflow_replay.py)."""
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    # Our dataclass modules are deterministic: shared, not re-imported per run.
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default
                                   .with_passthrough_modules("workflows.types",
                                                             "workflows.ingest_types"))


def build_worker(client: Client, settings: Settings, activities: RunActivities,
                 ingest: IngestActivities, file_search: FileSearchActivities) -> Worker:
    # Runs and vector-store ingestion share the task queue (and the worker).
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[AssistantRunWorkflow, IngestFileWorkflow],
        workflow_runner=workflow_runner(settings.workflow_sandbox),
        activities=[activities.finish_run,
                    activities.record_tool_outputs, activities.model_turn,
                    file_search.file_search, ingest.ingest_file, ingest.fail_ingest],
        # On SIGTERM, in-flight model calls get this long to finish before
        # they are cancelled (and retried by whichever worker comes next).
        graceful_shutdown_timeout=timedelta(seconds=10),
        # Heartbeats are how a cancel reaches a model call; by default the SDK may hold
        # them back for up to 80% of the heartbeat timeout (12 s), so a cancel would too.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        interceptors=[ActivityMetricsInterceptor()],
    )



async def _connect(settings: Settings, tracer_provider: TracerProvider | None,
                   patience_seconds: float = 60.0) -> Client:
    """Temporal's frontend accepts connections a moment before it is healthy ("Frontend is
    not healthy yet"), e.g. right after `assistants up` starts it or while a cluster
    restarts: keep trying for a while instead of exiting."""
    deadline = asyncio.get_running_loop().time() + patience_seconds
    while True:
        try:
            return await Client.connect(settings.temporal_address,
                                        namespace=settings.temporal_namespace,
                                        interceptors=temporal_interceptors(tracer_provider))
        except RuntimeError as error:
            if asyncio.get_running_loop().time() > deadline:
                raise
            logger.warning("Temporal at %s is not ready (%s); retrying",
                           settings.temporal_address, error)
            await asyncio.sleep(0.5)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None,
                     tracer_provider: TracerProvider | None = None) -> None:
    engine = create_engine(settings.database_url, pre_ping=False)
    # Provider retries are off (httpx does not retry); Temporal owns retries.
    timeout = httpx.Timeout(settings.llm_timeout_seconds, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout) as http:
        provider = ProviderRouter.from_settings(http, settings)
        # Appends go through a client that never re-sends them (core/redis_client.py).
        redis_client = create_redis(settings.redis_url)
        unretried = create_redis(settings.redis_url, retry=False)
        events = RunEvents(redis_client, unretried)
        storage = ObjectStorage(settings)
        raw_db = RawPool(engine)
        await raw_db.open()
        activities = RunActivities(create_sessionmaker(engine), raw_db, provider,
                                   events, provider.context_window, storage)
        # With tracing on, the client's TracingInterceptor also traces the worker's
        # workflows and activities, continuing the trace the API started.
        client = await _connect(settings, tracer_provider)
        sessions = create_sessionmaker(engine)
        embedder = embedder_from_settings(settings)
        ingest = IngestActivities(sessions, storage, embedder)
        file_search = FileSearchActivities(sessions, embedder, events)
        worker = build_worker(client, settings, activities, ingest, file_search)
        metrics_server = None
        if settings.worker_metrics_port:  # Prometheus /metrics, off by default
            metrics_server = serve_metrics(settings.worker_metrics_port)
        logger.info("worker polling task queue %r", settings.temporal_task_queue)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
        async with worker:  # leaving the block shuts down gracefully
            await stop.wait()
        if metrics_server is not None:
            metrics_server.shutdown()
        await redis_client.aclose()
        await unretried.aclose()
        await raw_db.close()
    await engine.dispose()
