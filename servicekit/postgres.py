"""Postgres connection settings and idempotent creation of a service's own database.

`POSTGRES_HOST` may name several hosts (`db1,db2`), with one port for all or one each
(`POSTGRES_PORT=5432,5433`). libpq then tries them in turn and keeps only a server that
takes writes (`target_session_attrs=read-write`), so once a standby is promoted every new
connection finds the new primary by itself; while none takes writes, a connection fails
as one to an unreachable server does, and the fail-fast gates answer (servicekit.failfast).

Every connection finds a lost peer within seconds, on both ends (`KEEPALIVES`). A server
keeps a session's advisory locks until it sees the session end: a relay's lead, a
projector's partitions. When a host is cut off, its half-open connections would otherwise
keep them for as long as TCP allows, two hours by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from servicekit.env import SettingsError, env_str, read, setting

READ_WRITE = "read-write"  # what libpq looks for among several hosts
# A peer that answers no probe for 5 + 3 x 2 s, or leaves data unacknowledged for 10 s, is
# gone: libpq's own settings for the client's end, the server's for its end of the session.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT, USER_TIMEOUT_MS = 5, 2, 3, 10_000
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": KEEPALIVE_IDLE,
    "keepalives_interval": KEEPALIVE_INTERVAL,
    "keepalives_count": KEEPALIVE_COUNT,
    "tcp_user_timeout": USER_TIMEOUT_MS,
    "options": f"-c tcp_keepalives_idle={KEEPALIVE_IDLE}"
    f" -c tcp_keepalives_interval={KEEPALIVE_INTERVAL}"
    f" -c tcp_keepalives_count={KEEPALIVE_COUNT} -c tcp_user_timeout={USER_TIMEOUT_MS}",
}


def ports(raw: str) -> str:
    """POSTGRES_PORT: a port, or one per host, comma-separated."""
    parts = [part.strip() for part in raw.split(",")]
    if not all(part.isdigit() and 1 <= int(part) <= 65535 for part in parts):
        raise SettingsError(f"POSTGRES_PORT must be ports from 1 to 65535, not {raw!r}")
    return ",".join(parts)


@dataclass(frozen=True, kw_only=True)
class PostgresSettings:
    host: str = setting("127.0.0.1", "POSTGRES_HOST")  # or several: h1,h2
    port: str = setting("5432", "POSTGRES_PORT", parse=ports)  # or one per host
    user: str = setting("postgres", "POSTGRES_USER")
    password: str = setting("", "POSTGRES_PASSWORD", secret=True, keep_spaces=True)
    dbname: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, dbname_var: str, dbname: str) -> PostgresSettings:
        """The shared server settings, and this service's database from `dbname_var`."""
        return read(cls, env, dbname=env_str(env, dbname_var, dbname))

    @property
    def several_hosts(self) -> bool:
        return "," in self.host

    def conninfo(self, dbname: str | None = None, *, connect_timeout: int = 5) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname or self.dbname,
            connect_timeout=connect_timeout,
            application_name="ordersystem",
            target_session_attrs=READ_WRITE if self.several_hosts else None,
            **KEEPALIVES,
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
            "POSTGRES_PORT": self.port,
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
