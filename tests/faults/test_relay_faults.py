"""The relay as a real process under faults: kill -9, two instances, a broker restart."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal

import psycopg
import pytest

from order_service.application import Orders
from order_service.domain import Order
from servicekit.postgres import PostgresSettings
from tests.support import (
    Databases,
    Delivery,
    RelayProcess,
    Topology,
    eventually,
    positions,
    rabbitmqctl,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq_up")]

PAGE = 50


@pytest.fixture
def database(databases: Databases) -> PostgresSettings:
    return databases.fresh("relay_faults")


@pytest.fixture
def orders(database: PostgresSettings) -> Iterator[Orders]:
    app = Orders(env=database.eventsourcing_env())
    yield app
    app.close()


@pytest.fixture
async def topology() -> AsyncIterator[Topology]:
    declared = await Topology.declare("faults")
    yield declared
    await declared.delete()


def fill(orders: Orders, count: int) -> list[int]:
    """Store `count` orders quickly (many per transaction); their positions."""
    for start in range(0, count, 200):
        batch = [
            Order.place(
                order_id=uuid.uuid4(),
                customer_id=1 + n % 5,
                product_name="load",
                quantity=1,
                price=Decimal("1.00"),
            )
            for n in range(start, min(start + 200, count))
        ]
        orders.save_orders(*batch)
    return [n.id for n in orders.recorder.select_notifications(start=1, limit=10**6)]


def relay_env(database: PostgresSettings, topology: Topology) -> dict[str, str]:
    return {
        "ORDERS_DB": database.dbname,
        "ORDERS_EXCHANGE": topology.exchange,
        "RELAY_PAGE_SIZE": str(PAGE),
        "LOG_LEVEL": "WARNING",
    }


def stored_position(database: PostgresSettings) -> int:
    with psycopg.connect(database.conninfo()) as conn:
        try:
            row = conn.execute("SELECT last_published FROM relay_positions").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0]) if row else 0


def everything(expected: list[int]) -> Callable[[list[Delivery]], bool]:
    """Until every expected position has arrived at least once."""
    wanted = set(expected)
    return lambda got: wanted <= set(positions(got))


async def test_kill_9_mid_stream_loses_nothing_and_repeats_only_the_unconfirmed_tail(
    database: PostgresSettings, orders: Orders, topology: Topology
) -> None:
    expected = fill(orders, 2000)
    first = RelayProcess(relay_env(database, topology)).start()
    await eventually(lambda: stored_position(database) >= 300, within=30, what="300 published")

    first.kill()
    at_kill = stored_position(database)
    second = RelayProcess(relay_env(database, topology)).start()
    try:
        received = await topology.collect(everything(expected), within=60)
    finally:
        second.stop()

    assert at_kill < expected[-1], "the relay finished before it could be killed mid-stream"
    counts = Counter(positions(received))
    assert set(counts) == set(expected)  # every position arrived
    repeated = sorted(p for p, n in counts.items() if n > 1)
    assert all(n <= 2 for n in counts.values())
    assert all(at_kill < p <= at_kill + PAGE for p in repeated), (at_kill, repeated)


async def test_two_relays_at_once_publish_each_event_once_in_order(
    database: PostgresSettings, orders: Orders, topology: Topology
) -> None:
    relays = [RelayProcess(relay_env(database, topology)).start() for _ in range(2)]
    try:
        expected = fill(orders, 1000)
        received = await topology.collect(everything(expected), within=60)
    finally:
        for relay in relays:
            relay.stop()

    assert positions(received) == expected


async def test_a_standby_takes_over_within_5_seconds_of_the_leaders_death(
    database: PostgresSettings, orders: Orders, topology: Topology
) -> None:
    leader = RelayProcess(relay_env(database, topology)).start()
    first = fill(orders, 10)
    await topology.collect(everything(first))
    standby = RelayProcess(relay_env(database, topology)).start()
    try:
        leader.kill()
        died = time.monotonic()
        later = [p for p in fill(orders, 20) if p > first[-1]]

        received = await topology.collect(everything(later), within=15)
        taken_over_in = time.monotonic() - died
    finally:
        standby.stop()

    assert taken_over_in < 5.0
    assert set(positions(received)) == set(later)


async def test_everything_arrives_after_rabbitmq_restarts_mid_stream(
    database: PostgresSettings, orders: Orders, topology: Topology
) -> None:
    fill(orders, 2000)
    relay = RelayProcess(relay_env(database, topology)).start()
    try:
        await eventually(lambda: stored_position(database) >= 300, within=30, what="300 out")
        await rabbitmqctl("stop_app")
        try:
            expected = fill(orders, 500)  # the stream goes on while the broker is down
        finally:
            await rabbitmqctl("start_app")
        received = await topology.collect(everything(expected), within=90)
    finally:
        relay.stop()

    assert set(positions(received)) == set(expected)
    assert len(expected) == 2500
