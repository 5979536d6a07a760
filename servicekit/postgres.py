"""Postgres connection settings and idempotent creation of a service's own database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from eventsourcing.postgres import PostgresFactory
from psycopg import sql

from servicekit.env import env_str, read, setting


@dataclass(frozen=True, kw_only=True)
class PostgresSettings:
    host: str = setting("127.0.0.1", "POSTGRES_HOST")
    port: int = setting(5432, "POSTGRES_PORT")
    user: str = setting("postgres", "POSTGRES_USER")
    password: str = setting("", "POSTGRES_PASSWORD", secret=True, keep_spaces=True)
    dbname: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, dbname_var: str, dbname: str) -> PostgresSettings:
        """The shared server settings, and this service's database from `dbname_var`."""
        return read(cls, env, dbname=env_str(env, dbname_var, dbname))

    def conninfo(self, dbname: str | None = None, *, connect_timeout: int = 5) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname or self.dbname,
            connect_timeout=connect_timeout,
            application_name="ordersystem",
        )

    def eventsourcing_env(self, pool_size: int = 10) -> dict[str, str]:
        """The variables the eventsourcing library reads for its Postgres persistence.

        The library's pool opens its minimum at once, so every process opens 2 connections
        and grows on demand to `pool_size`. The factory is the library's, made to fail fast
        while the database is unreachable (servicekit.failfast).
        """
        return {
            "PERSISTENCE_MODULE": "servicekit.failfast:PostgresFactory",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": str(min(2, pool_size)),
            "POSTGRES_MAX_OVERFLOW": str(max(0, pool_size - 2)),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_PRE_PING": "y",
        }

    def __repr__(self) -> str:  # never print the password
        return f"PostgresSettings({self.user}@{self.host}:{self.port}/{self.dbname})"


def ensure_database(settings: PostgresSettings) -> bool:
    """Create the database if it is missing; True when it was created."""
    with psycopg.connect(settings.conninfo("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (settings.dbname,)
        ).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.dbname)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            return False  # another process created it a moment ago
        return True


T = TypeVar("T")


def schema_in_place(factory: Any, table: str, column: str, function: str = "") -> bool:
    """Whether `table.column` (and the function, if named) exist, from the catalog (which
    takes no lock on the table).

    The library's table creation is idempotent but not harmless: CREATE INDEX IF NOT EXISTS
    and ALTER TABLE ... ADD COLUMN IF NOT EXISTS lock the table even when there is nothing
    to do, and a process starting while others write can deadlock with them. When the
    newest piece of the schema is there, a process skips that DDL altogether.
    """
    if not isinstance(factory, PostgresFactory):
        return False
    with factory.datastore.get_connection() as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s"
            " AND (%s = '' OR EXISTS (SELECT 1 FROM information_schema.routines"
            "  WHERE routine_schema = current_schema() AND routine_name = %s))",
            (table, column, function, function),
        ).fetchone()
    return found is not None


def skip_table_creation(factory: Any) -> None:
    factory.env["CREATE_TABLE"] = "no"


def create_application(factory: Callable[[], T], settings: PostgresSettings) -> T:
    """Create the database if missing, then build the application (which creates its tables),
    one process at a time: processes starting together would otherwise race to create them."""
    with psycopg.connect(settings.conninfo("postgres"), autocommit=True) as conn:
        key = f"create:{settings.dbname}"
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            ensure_database(settings)
            return factory()
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


def drop_database(settings: PostgresSettings) -> None:
    with psycopg.connect(settings.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(settings.dbname)
            )
        )
