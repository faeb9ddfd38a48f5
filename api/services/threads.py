"""Creating threads: a new thread's columns, and a thread with its initial messages.

A thread is also created by `POST /threads/runs` (api/services/runs.py through the ORM,
api/services/run_statements.py in one statement): all get their columns from
`new_thread_values`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.schemas.common import tool_resources_to_wire
from api.schemas.threads import CreateThread
from api.services import ingestion, references, store_creation
from api.services.messages import add_messages
from core import ids
from core.settings import Settings
from core.tables import ThreadRow, VectorStoreFileRow


def new_thread_values(project: str, body: CreateThread, created_at: int) -> dict[str, Any]:
    """A new thread's columns: for `ThreadRow(**...)`, or api/rows.py's `new_row`."""
    return {
        "id": ids.new_id(ids.THREAD),
        "project_id": project,
        "created_at": created_at,
        "tool_resources": tool_resources_to_wire(body.tool_resources),
        "metadata_": body.metadata or {},
    }


async def insert_thread(session: AsyncSession, project: str,
                        body: CreateThread) -> tuple[ThreadRow, list[VectorStoreFileRow]]:
    """Add a thread, its `vector_stores` helper store and its initial messages (with their
    attachments) to the session; references are the caller's to check first
    (api/services/references.py). The caller commits, then starts ingesting the returned files."""
    now = int(time.time())
    values = new_thread_values(project, body, now)
    values["tool_resources"], ingesting = await store_creation.apply_helper(
        session, project, body.tool_resources, for_thread=True)
    thread = ThreadRow(**values)
    session.add(thread)
    await session.flush()  # the messages' foreign key needs the thread row first
    _, attached = await add_messages(session, thread, body.messages, now)
    return thread, ingesting + attached


async def create_thread(session: AsyncSession, temporal: Client, settings: Settings,
                        project: str, body: CreateThread) -> ThreadRow:
    """POST /threads: the thread, its messages and helper store, committed; their files
    start ingesting."""
    await references.ensure(session, project, body)
    thread, ingesting = await insert_thread(session, project, body)
    await session.commit()
    await ingestion.start(session, temporal, settings, ingesting)
    return thread
