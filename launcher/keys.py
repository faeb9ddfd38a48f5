"""`assistants keys create|list|revoke`: API keys, straight against the database
(DATABASE_URL, or the embedded stack's: see launcher/embedded_db.py).

`create` prints the key alone on stdout (so `KEY=$(assistants keys create ...)` works)
and everything else on stderr. The key is shown this once and never again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from core.api_keys import create_key, list_keys, revoke_key
from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade


def _when(timestamp: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(timestamp)) if timestamp else "-"


async def _run(database_url: str, args: argparse.Namespace) -> int:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            if args.keys_command == "create":
                try:
                    new = await create_key(session, args.project, args.name)
                except ValueError as error:
                    print(f"error: {error}", file=sys.stderr)
                    return 2
                print(f"Created {new.row.id} for project {new.row.project_id!r}. Store the "
                      "key now: it is not kept and cannot be shown again.", file=sys.stderr)
                print(new.secret, flush=True)
            elif args.keys_command == "list":
                rows = [("ID", "PROJECT", "NAME", "KEY", "CREATED (UTC)", "STATUS")]
                rows += [(k.id, k.project_id, k.name or "", f"{k.prefix}...", _when(k.created_at),
                          f"revoked {_when(k.revoked_at)}" if k.revoked_at else "active")
                         for k in await list_keys(session)]
                widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
                for row in rows:
                    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                          .rstrip())
            else:
                revoked = await revoke_key(session, args.key_id)
                if revoked is None:
                    print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
                    return 1
                print(f"revoked {revoked.id} (project {revoked.project_id!r})")
    finally:
        await engine.dispose()
    return 0


def run_keys_command(database_url: str, args: argparse.Namespace) -> int:
    upgrade(database_url)  # keys may be made before the API ever started
    return asyncio.run(_run(database_url, args))
