"""The relay as a real process under faults: kill -9, two instances, a broker restart."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

import psycopg
import pytest

from order_service.application import MIGRATIONS, Orders
from servicekit.postgres import PostgresSettings
from tests.broker import Delivery, Topology, positions, rabbitmqctl
from tests.support import Databases, eventually, fill_orders, relay_process

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq_up")]

PAGE = 50


@pytest.fixture
def database(databases: Databases) -> PostgresSettings:
    return databases.fresh("relay_faults", MIGRATIONS)


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
    expected = fill_orders(orders, 2000)
    first = relay_process(relay_env(database, topology)).start()
    await eventually(lambda: stored_position(database) >= 300, within=30, what="300 published")

    first.kill()
    at_kill = stored_position(database)
    second = relay_process(relay_env(database, topology)).start()
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
    relays = [relay_process(relay_env(database, topology)).start() for _ in range(2)]
    try:
        expected = fill_orders(orders, 1000)
        received = await topology.collect(everything(expected), within=60)
    finally:
        for relay in relays:
            relay.stop()

    assert positions(received) == expected


async def test_a_standby_takes_over_within_5_seconds_of_the_leaders_death(
    database: PostgresSettings, orders: Orders, topology: Topology
) -> None:
    leader = relay_process(relay_env(database, topology)).start()
    first = fill_orders(orders, 10)
    await topology.collect(everything(first))
    # The leader stores its position up to a quarter second after the confirms; a
    # standby resumes from the stored one, so wait for it, or the ten come again.
    await eventually(lambda: stored_position(database) == first[-1], what="the ten stored")
    standby = relay_process(relay_env(database, topology)).start()
    try:
        leader.kill()
        died = time.monotonic()
        later = [p for p in fill_orders(orders, 20) if p > first[-1]]

        received = await topology.collect(everything(later), within=15)
        taken_over_in = time.monotonic() - died
    finally:
        standby.stop()

    assert taken_over_in < 5.0
    assert set(positions(received)) == set(later)


async def test_everything_arrives_after_rabbitmq_restarts_mid_stream(
    database: PostgresSettings, orders: Orders, topology: Topology
) -> None:
    fill_orders(orders, 2000)
    relay = relay_process(relay_env(database, topology)).start()
    try:
        await eventually(lambda: stored_position(database) >= 300, within=30, what="300 out")
        await rabbitmqctl("stop_app")
        try:
            expected = fill_orders(orders, 500)  # the stream goes on while the broker is down
        finally:
            await rabbitmqctl("start_app")
        received = await topology.collect(everything(expected), within=90)
    finally:
        relay.stop()

    assert set(positions(received)) == set(expected)
    assert len(expected) == 2500
