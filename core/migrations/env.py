"""Alembic environment: runs migrations under a Postgres advisory lock.

Two API processes starting at once both call `upgrade`; the lock makes the
second wait and then find nothing to do.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from core import api_keys  # noqa: F401  (registers projects/api_keys in the metadata)
from core.tables import metadata

# An arbitrary constant shared by every process that migrates this database.
MIGRATION_LOCK_ID = 7_231_004_117


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by core.migrate"
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
    engine.dispose()


run_migrations_online()
