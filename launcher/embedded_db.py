"""The embedded stack's database for commands that need nothing else (`assistants keys`).

`assistants up` picks Postgres' port afresh at every start, so there is no URL to copy.
With no DATABASE_URL, such a command finds the data dir's Postgres itself: if it runs,
its port is in `postmaster.pid`, which Postgres keeps in its data directory (line 4);
if not, it starts that Postgres alone for the command and stops it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from launcher.embedded import EmbeddedStack, postgres_url


class NoEmbeddedDatabase(LookupError):
    """The data dir holds no embedded Postgres (a typo, or `assistants up` never ran there)."""


@contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """The DATABASE_URL of `data_dir`'s Postgres, running for as long as the block."""
    pgdata = data_dir / "postgres"
    if not (pgdata / "PG_VERSION").is_file():
        raise NoEmbeddedDatabase(
            f"no embedded stack in {data_dir} (no Postgres data there). Run `assistants up "
            "--data-dir DIR` once, pass the --data-dir it used, or set DATABASE_URL.")
    port = running_port(pgdata)
    if port is not None:  # the stack is up: use its Postgres, and leave it running
        yield postgres_url(port)
        return
    stack = EmbeddedStack(data_dir)
    try:
        env = stack.start_postgres()()
        yield env["DATABASE_URL"]
    finally:
        stack.stop()


def running_port(pgdata: Path) -> int | None:
    """The port of the Postgres serving `pgdata` now, or None.

    A pid file outlives a `kill -9`, and its port may since have gone to another server:
    the answer counts only if the server on that port says it serves this data directory.
    """
    import psycopg

    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        port = int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                             connect_timeout=2) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
    except psycopg.Error:
        return None
    serves = row is not None and Path(str(row[0])).resolve() == pgdata.resolve()
    return port if serves else None
