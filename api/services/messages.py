"""Adding messages to a thread: a new message's columns, and message creation.

Messages come from `POST /threads/{id}/messages`, from a new thread's initial messages
(api/services/threads.py) and from a run's `additional_messages` (api/services/runs.py
through the ORM, api/services/run_statements.py in one statement): all get their columns
from `new_message_values`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.lookups import lock_idle_thread
from api.schemas.messages import CreateMessage, attachments_to_wire, content_to_wire
from api.services import attachments, ingestion, references
from core import ids
from core.settings import Settings
from core.tables import MessageRow, ThreadRow, VectorStoreFileRow


def new_message_values(thread_id: str, body: CreateMessage, created_at: int) -> dict[str, Any]:
    """A new message's columns: for `MessageRow(**...)`, or api/rows.py's `new_row`."""
    return {
        "id": ids.new_id(ids.MESSAGE),
        "thread_id": thread_id,
        "created_at": created_at,
        "role": body.role,
        "content": content_to_wire(body.content),
        "status": "completed",
        "completed_at": created_at,
        "attachments": attachments_to_wire(body.attachments),
        "metadata_": body.metadata or {},
    }


async def add_messages(session: AsyncSession, thread: ThreadRow, bodies: Sequence[CreateMessage],
                       created_at: int) -> tuple[list[MessageRow], list[VectorStoreFileRow]]:
    """Add messages (and their file_search attachments) to a thread in the session; the
    caller commits, then starts ingesting the returned files (`ingestion.start`)."""
    rows = []
    for body in bodies:
        row = MessageRow(**new_message_values(thread.id, body, created_at))
        session.add(row)
        rows.append(row)
        # Flushing one at a time keeps seq in request order.
        await session.flush()
    return rows, await attachments.attach_files(session, thread, bodies)


async def create_message(session: AsyncSession, temporal: Client, settings: Settings,
                         project: str, thread_id: str, body: CreateMessage) -> MessageRow:
    """POST /threads/{thread_id}/messages: on an idle thread of the project, with checked
    references (api/services/references.py); its attached files start ingesting once committed."""
    thread = await lock_idle_thread(session, project, thread_id)
    await references.ensure(session, project, body)
    (row,), ingesting = await add_messages(session, thread, [body], int(time.time()))
    await session.commit()
    await ingestion.start(session, temporal, settings, ingesting)
    return row
