"""Postgres connection settings and idempotent creation of a service's own database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
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
        while the database is unreachable (servicekit.failfast). It creates no tables:
        the schema step does (servicekit.schema).
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
            "CREATE_TABLE": "no",
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


def drop_database(settings: PostgresSettings) -> None:
    with psycopg.connect(settings.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(settings.dbname)
            )
        )
