"""The customer store's pool checks a connection that sat idle before handing it out."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from customer_service.store import CustomerStore
from servicekit.failfast import IDLE_PING


def test_the_store_checks_its_idle_connections_as_every_pool_does() -> None:
    """Back from a cut, a host finds its sessions ended by keepalives: the store replaces
    them (servicekit/tests/test_failfast.py shows how the pool does) instead of failing a lookup on each,
    which would refuse orders on that host with 503s until each had been tried."""
    unopened: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool("", open=False)

    assert CustomerStore(unopened).pool.ping_idle_after == IDLE_PING
