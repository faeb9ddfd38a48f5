"""file_search as a run tool: the model asks, the worker searches the run's vector stores.

The model sees file_search as a function `file_search(query)`; its calls are
recorded as OpenAI `file_search` tool calls and answered server-side by this
activity, never by the client. Each result is labelled `【turn:i†filename】`
in what the model reads, so citations in its answer can be turned into
`file_citation` annotations (see `citations`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities import run_writes
from activities.citations import results_text
from activities.heartbeat import heartbeating
from core.embeddings import Embedder
from core.events import RunEvents
from core.llm.types import FunctionSpec
from core.retrieval import search
from core.tables import (
    AssistantRow,
    RunRow,
    RunStepRow,
    ThreadRow,
    VectorStoreFileRow,
    VectorStoreRow,
)
from core.wire import run_to_wire, step_to_wire
from workflows.types import FileSearchInput

FILE_SEARCH = "file_search"
FILE_SEARCH_SPEC = FunctionSpec(
    name=FILE_SEARCH,
    description="Search the files attached to this conversation. Cite what you use with its "
                "label, e.g. 【1:0†notes.txt】.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}},
                "required": ["query"]},
)
DEFAULT_MAX_RESULTS = 20
DEFAULT_RANKER = "default_2024_08_21"
# As OpenAI does for a run, the search first waits for the files of its stores still being
# ingested (a file attached to a message and run at once), then searches what is there.
# OpenAI waits up to 60 s; ours is shorter so the wait plus the search (a query embedding,
# then SQL) fits the activity's 60 s start_to_close in workflows/run.py.
INGESTION_WAIT_SECONDS = 40.0
INGESTION_POLL_SECONDS = 0.25  # one indexed query per poll


def file_search_settings(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    for tool in tools:
        if tool.get("type") == FILE_SEARCH:
            return dict(tool.get("file_search") or {})
    return None


async def vector_store_ids(session: AsyncSession, run: RunRow) -> list[str]:
    """The stores a run searches: its own, its thread's and its assistant's — only those
    of the thread's project, whatever ids a client wrote into tool_resources."""
    thread = await session.get(ThreadRow, run.thread_id)
    if thread is None:
        return []
    assistant = await session.get(AssistantRow, run.assistant_id)
    named: list[str] = []
    for resources in (run.tool_resources, thread.tool_resources,
                      assistant and assistant.tool_resources):
        for store in ((resources or {}).get("file_search") or {}).get("vector_store_ids") or []:
            if store not in named:
                named.append(store)
    if not named:
        return []
    owned = set(await session.scalars(select(col(VectorStoreRow.id)).where(
        col(VectorStoreRow.id).in_(named), col(VectorStoreRow.project_id) == thread.project_id)))
    return [store for store in named if store in owned]


class FileSearchActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], embedder: Embedder | None,
                 events: RunEvents) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._events = events

    async def _await_ingestion(self, stores: list[str]) -> None:
        """Until no file of `stores` is in progress, or INGESTION_WAIT_SECONDS passed."""
        deadline = time.monotonic() + INGESTION_WAIT_SECONDS
        busy = (select(literal(1)).where(col(VectorStoreFileRow.vector_store_id).in_(stores),
                                         col(VectorStoreFileRow.status) == "in_progress")
                .limit(1))
        async with heartbeating():  # a cancel of the run reaches us while we wait
            while True:
                # A session per poll: no connection or transaction held across the wait.
                async with self._sessions() as session:
                    if await session.scalar(busy) is None:
                        return
                if time.monotonic() >= deadline:
                    return  # search what is ingested so far, as OpenAI does after its wait
                await asyncio.sleep(INGESTION_POLL_SECONDS)

    @activity.defn(name="file_search")
    async def file_search(self, input: FileSearchInput) -> None:
        step_key = run_writes.step_id(input.run_id, input.turn, "tools")
        async with self._sessions() as session:
            run = await session.get(RunRow, input.run_id)
            if run is None:
                return
            options = file_search_settings(run.tools) or {}
            stores = await vector_store_ids(session, run)
        if stores:
            await self._await_ingestion(stores)
        threshold = float((options.get("ranking_options") or {}).get("score_threshold", 0.0))
        limit = int(options.get("max_num_results") or DEFAULT_MAX_RESULTS)
        async with self._sessions() as session, session.begin():
            step = await session.get(RunStepRow, step_key, with_for_update=True)
            if step is None:
                return
            calls = [dict(c) for c in step.step_details["tool_calls"]]
            turn_results: list[dict[str, Any]] = []
            for call in calls:
                if call["type"] != FILE_SEARCH:
                    continue
                found = await search(session, stores, call["_query"], limit, threshold,
                                     embedder=self._embedder) if stores else []
                results = [{"file_id": r.file_id, "file_name": r.filename, "score": r.score,
                            "content": [{"type": "text", "text": r.text}]} for r in found]
                call["file_search"] = {"ranking_options": {
                    "ranker": DEFAULT_RANKER, "score_threshold": threshold}, "results": results}
                call["_output"] = results_text(input.turn, results, len(turn_results))
                turn_results += results
            step.step_details = {**step.step_details, "tool_calls": calls}
            pending = [c for c in calls if c["type"] == "function"]
            if pending:
                # Searched first, so the client is asked for its functions' outputs now.
                await session.execute(run_writes.REQUIRE_ACTION,
                                      run_writes.require_action_params(input.run_id, pending))
            else:
                step.status, step.completed_at = "completed", int(time.time())
            session.add(step)
        if not pending:
            await self._events.publish(input.run_id,
                                       ("thread.run.step.completed", step_to_wire(step)))
            return
        async with self._sessions() as session:
            refreshed = await session.get(RunRow, input.run_id)
        assert refreshed is not None
        await self._events.publish(input.run_id, (f"thread.run.{refreshed.status}",
                                                  run_to_wire(refreshed)))
