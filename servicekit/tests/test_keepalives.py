"""Every Postgres session finds a lost peer within seconds, on both ends: the client's
socket and the server's carry keepalives and a TCP user timeout, whichever way the session
was opened. The server keeps a session's advisory locks until it sees the session end."""

from __future__ import annotations

import dataclasses
import uuid

import psycopg
import pytest
from eventsourcing.application import Application

from servicekit.postgres import (
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE,
    KEEPALIVE_INTERVAL,
    USER_TIMEOUT_MS,
    PostgresSettings,
)
from servicekit.schema import event_store_migrations
from tests.support import Databases

pytestmark = pytest.mark.integration

SERVER_SIDE = (
    "SELECT name, setting FROM pg_settings WHERE name IN"
    " ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',"
    " 'tcp_user_timeout')"
)
EXPECTED = {
    "tcp_keepalives_idle": str(KEEPALIVE_IDLE),
    "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL),
    "tcp_keepalives_count": str(KEEPALIVE_COUNT),
    "tcp_user_timeout": str(USER_TIMEOUT_MS),
}


def over_tcp(settings: PostgresSettings) -> PostgresSettings:
    """Keepalives are a TCP socket's: on a unix socket the server reports zeros."""
    return dataclasses.replace(settings, host="127.0.0.1")


def test_a_session_of_our_own_has_keepalives_on_both_ends(databases: Databases) -> None:
    settings = over_tcp(databases.fresh("keepalives"))
    with psycopg.connect(settings.conninfo()) as conn:
        server = {str(name): str(value) for name, value in conn.execute(SERVER_SIDE).fetchall()}
        client = conn.info.get_parameters()

    assert server == EXPECTED
    assert client["keepalives_idle"] == str(KEEPALIVE_IDLE)
    assert client["tcp_user_timeout"] == str(USER_TIMEOUT_MS)


def test_the_event_stores_pooled_sessions_have_them_too(databases: Databases) -> None:
    settings = over_tcp(databases.fresh("keepalives", event_store_migrations(Application)))
    app = Application[uuid.UUID](env=settings.eventsourcing_env(pool_size=1))
    try:
        with app.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(SERVER_SIDE).fetchall()  # the library's rows are dicts
    finally:
        app.close()

    assert {row["name"]: row["setting"] for row in rows} == EXPECTED
