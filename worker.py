"""The Temporal worker: runs the run workflows and their activities."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

import httpx
import redis.asyncio as redis
from temporalio.client import Client
from temporalio.worker import Worker

from activities.runs import RunActivities
from core.db import create_engine, create_sessionmaker
from core.events import RunEvents
from core.llm.openai_compatible import OpenAICompatibleProvider
from core.settings import Settings
from workflows.run import AssistantRunWorkflow

logger = logging.getLogger(__name__)


def build_worker(client: Client, settings: Settings, activities: RunActivities) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[AssistantRunWorkflow],
        activities=[activities.transition, activities.finish_run,
                    activities.record_tool_outputs, activities.model_turn],
        # On SIGTERM, in-flight model calls get this long to finish before
        # they are cancelled (and retried by whichever worker comes next).
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    engine = create_engine(settings.database_url)
    # Provider retries are off (httpx does not retry); Temporal owns retries.
    timeout = httpx.Timeout(settings.llm_timeout_seconds, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout) as http:
        provider = OpenAICompatibleProvider(http, settings.model_base_url,
                                            settings.model_api_key.get_secret_value() or None)
        redis_client = redis.from_url(settings.redis_url)
        activities = RunActivities(create_sessionmaker(engine), provider,
                                   RunEvents(redis_client))
        client = await Client.connect(settings.temporal_address,
                                      namespace=settings.temporal_namespace)
        worker = build_worker(client, settings, activities)
        logger.info("worker polling task queue %r", settings.temporal_task_queue)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
        async with worker:  # leaving the block shuts down gracefully
            await stop.wait()
        await redis_client.aclose()
    await engine.dispose()
