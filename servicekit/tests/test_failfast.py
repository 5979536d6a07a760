"""Fail fast while the database is unreachable: real pools (the event store's and an async
one) behind a link to the real Postgres that the test cuts and mends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from prometheus_client import REGISTRY
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from servicekit.failfast import (
    DatabaseUnavailableError,
    GuardedAsyncPool,
    GuardedPool,
    PostgresFactory,
)
from servicekit.postgres import PostgresSettings
from servicekit.schema import event_store_migrations
from tests.peers import Link
from tests.support import Databases, eventually


@pytest.fixture
def link(postgres_up: None) -> Iterator[Link]:
    forwarder = Link(int(PostgresSettings(dbname="postgres").port)).start()
    yield forwarder
    forwarder.stop()


@pytest.fixture
def app(databases: Databases, link: Link) -> Iterator[Application[uuid.UUID]]:
    tables = event_store_migrations(Application)
    settings = dataclasses.replace(databases.fresh("failfast", tables), port=str(link.port))
    application = Application[uuid.UUID](env=settings.eventsourcing_env(pool_size=2))
    yield application
    application.close()


def pool_of(app: Application[uuid.UUID]) -> GuardedPool:
    pool = app.factory.datastore.pool  # type: ignore[attr-defined]
    assert isinstance(pool, GuardedPool)
    return pool


def read(app: Application[uuid.UUID]) -> None:
    """One read through the library's recorder (which retries OperationalError ten times)."""
    with pytest.raises(AggregateNotFoundError):
        app.repository.get(uuid.uuid4())


def timed_failure(app: Application[uuid.UUID]) -> float:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError):
        app.repository.get(uuid.uuid4())
    return time.monotonic() - started


@pytest.mark.integration
def test_reads_fail_fast_while_the_database_is_cut_off_and_work_again_after(
    app: Application[uuid.UUID], link: Link
) -> None:
    read(app)

    link.cut()
    first, then = timed_failure(app), timed_failure(app)

    # The library alone took 52 s here: ten attempts, each waiting 5 s for a connection.
    assert first < 2.0
    assert then < 0.5  # the gate is closed: no wait for the pool at all
    assert not pool_of(app).gate.is_open

    link.mend()
    deadline = time.monotonic() + 15
    while True:  # the pool reconnects with its own backoff; a probe goes through each second
        try:
            read(app)
            break
        except DatabaseUnavailableError:
            assert time.monotonic() < deadline, "the database came back, the app did not"
            time.sleep(0.2)
    assert pool_of(app).gate.is_open


@pytest.mark.integration
async def test_the_gates_metrics_show_the_cut_and_count_the_closing(
    app: Application[uuid.UUID], link: Link
) -> None:
    labels = {
        "database": app.factory.env.get(PostgresFactory.POSTGRES_DBNAME) or "",
        "pool": "library",
    }

    def closed() -> float | None:
        return REGISTRY.get_sample_value("ordersystem_database_gate_closed", labels)

    def closings() -> float:
        return REGISTRY.get_sample_value("ordersystem_database_gate_closings_total", labels) or 0

    read(app)
    before = closings()
    assert closed() == 0

    link.cut()
    timed_failure(app)
    timed_failure(app)
    assert (closed(), closings()) == (1, before + 1)  # closed once, however many calls fail

    link.mend()

    def reopened() -> bool:  # a read is the probe that opens the gate
        with contextlib.suppress(DatabaseUnavailableError):
            read(app)
        return closed() == 0

    await eventually(reopened, within=15, what="the gate to open again")
    assert closings() == before + 1


@pytest.mark.integration
def test_a_pool_that_is_only_busy_refuses_that_call_and_leaves_the_gate_open(
    app: Application[uuid.UUID],
) -> None:
    pool = pool_of(app)
    held = [pool.pool.getconn(5) for _ in range(2)]  # every connection the pool may open
    try:
        started = time.monotonic()
        with (
            pytest.raises(DatabaseUnavailableError, match="no free connection"),
            pool.connection(timeout=0.5),
        ):
            pass
        assert time.monotonic() - started >= 0.5  # it waited its turn first
        assert pool.gate.is_open  # busy is not down: other calls still go through
    finally:
        for conn in held:
            pool.pool.putconn(conn)
    read(app)


@pytest.mark.integration
def test_a_connection_lost_mid_call_closes_the_gate(
    app: Application[uuid.UUID], link: Link
) -> None:
    pool = pool_of(app)
    entered = threading.Event()

    def long_query() -> None:
        with pool.connection() as conn:
            entered.set()
            conn.execute("SELECT pg_sleep(5)")

    errors: list[BaseException] = []

    def run() -> None:
        try:
            long_query()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert entered.wait(5)
    link.cut()
    worker.join(10)

    assert not worker.is_alive()
    # The call in progress gets the driver's own error, passed on unchanged: the exact class,
    # not a subclass, nor a DatabaseUnavailableError (that is for the calls after it).
    assert [type(exc) for exc in errors] == [psycopg.OperationalError]
    assert not pool.gate.is_open


@pytest.mark.integration
async def test_an_async_pool_fails_fast_while_cut_off_and_works_again_after(
    databases: Databases, link: Link
) -> None:
    settings = dataclasses.replace(databases.fresh("failfast_async"), port=str(link.port))
    raw: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        settings.conninfo(),
        min_size=1,
        max_size=2,
        timeout=5.0,
        check=AsyncConnectionPool.check_connection,  # as the customer service's
        open=False,
    )
    await raw.open(wait=True)
    pool = GuardedAsyncPool(raw)

    async def select_one() -> float:
        started = time.monotonic()
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return time.monotonic() - started

    async def refused() -> float:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError):
            await select_one()
        return time.monotonic() - started

    try:
        await select_one()
        link.cut()
        first, then = await refused(), await refused()

        assert first < 2.0  # not the pool's 5 s
        assert then < 0.5
        link.mend()
        deadline = time.monotonic() + 15
        while True:
            try:
                await select_one()
                break
            except DatabaseUnavailableError:
                assert time.monotonic() < deadline, "the database came back, the pool did not"
                await asyncio.sleep(0.2)
        assert pool.gate.is_open
    finally:
        await raw.close()


@pytest.mark.integration
def test_a_probe_that_fails_for_reasons_of_its_own_still_opens_the_gate(
    app: Application[uuid.UUID], link: Link
) -> None:
    """A consumer's first calls after an outage are redeliveries that end in duplicate-key
    errors; if those probes kept the gate closed, it would never get through again."""
    pool = pool_of(app)
    read(app)
    link.cut()
    timed_failure(app)
    link.mend()

    deadline = time.monotonic() + 15
    while True:
        try:
            with pool.connection():
                raise LookupError("the call's own failure, after it got its connection")
        except LookupError:
            break
        except DatabaseUnavailableError:
            assert time.monotonic() < deadline, "the database came back, the gate did not open"
            time.sleep(0.2)

    assert pool.gate.is_open


@pytest.mark.integration
@pytest.mark.parametrize("idle_ping", [True, False])
async def test_a_connection_idle_past_the_ping_threshold_is_checked_and_replaced_if_dead(
    databases: Databases, idle_ping: bool
) -> None:
    settings = databases.fresh("failfast_idle")
    raw: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        settings.conninfo(), min_size=1, max_size=1, timeout=5.0, open=False
    )
    await raw.open(wait=True)
    pool = GuardedAsyncPool(raw, ping_idle_after=0.0 if idle_ping else 3600.0)
    try:
        async with pool.connection() as conn:
            backend = conn.info.backend_pid
        with psycopg.connect(settings.conninfo(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))

        async def select_one() -> int:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
                return conn.info.backend_pid

        if idle_ping:  # checked before use: a fresh connection answers
            assert await asyncio.wait_for(select_one(), timeout=10) != backend
        else:  # used a moment ago: handed out unchecked, and the call sees it dead
            with pytest.raises(psycopg.OperationalError):
                await select_one()
    finally:
        await raw.close()
