"""The one schema step: each database's migrations, applied in order, each once.

`ordersystem migrate` runs it, and so does every process before it opens its database
(`migrated`); on a database that is up to date that is one read, and no DDL. No process
creates a table any other way: `PostgresSettings.eventsourcing_env` turns the library's own
table creation off (`CREATE_TABLE=no`), and only the migration that creates the library's
tables turns it on, for that one construction.

Why not let each process create what it lacks, as the library does by default: its
creation is idempotent but not harmless. CREATE INDEX IF NOT EXISTS and ALTER TABLE ... ADD
COLUMN IF NOT EXISTS lock the table even when there is nothing to do, so a process starting
while others write could deadlock with them. A migration recorded as applied never runs
again. The applied count is kept in `schema_migrations`; steps are only ever appended, and
each is idempotent, so a database made before this step existed takes each once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from eventsourcing.application import Application
from psycopg import sql

from servicekit.postgres import PostgresSettings, ensure_database
from servicekit.relay import RELAY_CHAIN, RELAY_TABLE

# A statement, or a function of the database's settings for what SQL cannot say alone.
Step = str | sql.Composed | Callable[[PostgresSettings], None]
T = TypeVar("T")


def migrate(settings: PostgresSettings, steps: Sequence[Step]) -> int:
    """Create the database if missing and apply the steps not applied yet, one migrator at
    a time; how many were applied. A database already up to date costs one read."""
    if _applied(settings) == len(steps):
        return 0
    with psycopg.connect(settings.conninfo("postgres"), autocommit=True) as conn:
        key = f"create:{settings.dbname}"
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            ensure_database(settings)
            return _apply(settings, steps)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


def _applied(settings: PostgresSettings) -> int | None:
    """The steps the database records as applied; None when it has no record (or the
    database is missing or unreachable: the locked path then says which)."""
    try:
        with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
            row = conn.execute("SELECT steps FROM schema_migrations").fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return None
    return row[0] if row else 0


def _apply(settings: PostgresSettings, steps: Sequence[Step]) -> int:
    with psycopg.connect(settings.conninfo()) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (steps integer NOT NULL)")
        row = conn.execute("SELECT steps FROM schema_migrations").fetchone()
        done = row[0] if row else 0
        for step in steps[done:]:
            if callable(step):
                step(settings)
            else:
                conn.execute(step)
        if done < len(steps):
            conn.execute("DELETE FROM schema_migrations")
            conn.execute("INSERT INTO schema_migrations VALUES (%s)", (len(steps),))
        return max(0, len(steps) - done)


def migrated(make: Callable[[], T], settings: PostgresSettings, steps: Sequence[Step]) -> T:
    """`make()` once the database is migrated: how a process opens its database."""
    migrate(settings, steps)
    return make()


def library_tables(application: Callable[..., Application[Any]]) -> Step:
    """The step that creates an application's tables with the library's own DDL (its
    recorder's), table creation turned on for this one construction."""

    def create(settings: PostgresSettings) -> None:
        env = {**settings.eventsourcing_env(pool_size=1), "CREATE_TABLE": "yes"}
        application(env=env).close()

    return create


def event_store_migrations(application: Callable[..., Application[Any]]) -> tuple[Step, ...]:
    """An event-sourced service's database: its application's tables, then its relay's."""
    return (library_tables(application), RELAY_TABLE, RELAY_CHAIN)
