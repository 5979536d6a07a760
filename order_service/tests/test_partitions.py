"""The order log in partitions: Postgres and Python agree on the hash, the feed serves each
partition chained within itself, and the relay publishes and resumes the same chains."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from decimal import Decimal
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.codec import decode
from contracts.events import Envelope, IntegrationEvent
from contracts.partitions import Partition, partition_of
from order_service.application import MIGRATIONS, Orders
from order_service.relay import event_log, relay_settings
from order_service.settings import Settings
from order_service.usecases import PlaceOrder
from servicekit.postgres import PostgresSettings
from servicekit.relay import Relay
from tests.broker import Topology
from tests.support import Databases, eventually

pytestmark = pytest.mark.integration
CUSTOMERS = range(1, 13)


@pytest.fixture(scope="module")
def database(databases: Databases) -> PostgresSettings:
    return databases.fresh("partitions", MIGRATIONS)


@pytest.fixture
def settings_(databases: Databases) -> Settings:
    return Settings(postgres=databases.fresh("partitioned", MIGRATIONS), relay_page_size=7)


@pytest.fixture
def orders(settings_: Settings) -> Iterator[Orders]:
    app = Orders(env=settings_.eventsourcing_env())
    yield app
    app.close()


@given(st.integers(min_value=1, max_value=2**63 - 1), st.integers(1, 256))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_postgres_computes_the_partition_python_computes(
    database: PostgresSettings, customer_id: int, partitions: int
) -> None:
    with psycopg.connect(database.conninfo()) as conn:
        row = conn.execute("SELECT order_partition(%s, %s)", (customer_id, partitions)).fetchone()

    assert row is not None
    assert row[0] == partition_of(customer_id, partitions)


def place_and_move(orders: Orders, count: int) -> list[UUID]:
    """Orders of twelve customers in turn; every third confirmed and every fifth cancelled
    afterwards, so lifecycle events (which name no customer) are in the log too."""
    placed = []
    for n in range(count):
        command = PlaceOrder(
            customer_id=CUSTOMERS[n % len(CUSTOMERS)],
            product_name=f"item {n}",
            quantity=1,
            price=Decimal("2.50"),
        )
        placed.append(orders.place(command).order.id)
    for n, order_id in enumerate(placed):
        if n % 3 == 0:
            orders.transition(order_id, "confirm")
        if n % 5 == 0:
            orders.transition(order_id, "cancel", reason="changed mind")
    return placed


def customers_of(orders: Orders, placed: list[UUID]) -> dict[UUID, int]:
    return {order_id: orders.get_order(order_id).customer_id for order_id in placed}


def expected_chains(
    everything: list[Envelope[IntegrationEvent]], owner: dict[UUID, int], partitions: int
) -> list[tuple[int, str, int | None]]:
    """(position, partition, previous in that partition) for every event of the log."""
    last: dict[int, int | None] = {}
    expected = []
    for item in everything:
        index = partition_of(owner[item.data.order_id], partitions)  # type: ignore[attr-defined]
        expected.append((item.position, str(Partition(index, partitions)), last.get(index)))
        last[index] = item.position
    return expected


def test_each_event_goes_to_its_customers_partition_chained_within_it(orders: Orders) -> None:
    placed = place_and_move(orders, 40)
    log = event_log(orders)
    everything = log.read(after=0, limit=1000)

    tagged = log.read_partitioned(after=0, limit=1000, partitions=4)

    assert [e.position for e in tagged] == [e.position for e in everything]
    assert [(e.position, e.partition, e.previous_position) for e in tagged] == expected_chains(
        everything, customers_of(orders, placed), 4
    )
    assert [e.data for e in tagged] == [e.data for e in everything]  # the same events


def test_one_partitions_pages_are_its_events_alone_chained_across_pages(orders: Orders) -> None:
    placed = place_and_move(orders, 40)
    log = event_log(orders)
    chains = expected_chains(log.read(after=0, limit=1000), customers_of(orders, placed), 3)

    for index in range(3):
        mine = [c for c in chains if c[1] == f"{index}of3"]
        served: list[Envelope[IntegrationEvent]] = []
        after = 0
        while page := log.read_partitioned(after=after, limit=4, partitions=3, only=index):
            served += page
            after = page[-1].position
        assert [(e.position, e.partition, e.previous_position) for e in served] == mine
        middle = mine[len(mine) // 2][0]  # a page may start anywhere: its chain still holds
        assert (
            log.read_partitioned(after=middle, limit=1, partitions=3, only=index)[
                0
            ].previous_position
            == middle
        )


def test_an_event_whose_order_has_no_summary_is_refused_not_skipped(
    settings_: Settings, orders: Orders
) -> None:
    placed = place_and_move(orders, 3)
    with psycopg.connect(settings_.postgres.conninfo(), autocommit=True) as conn:
        conn.execute("DELETE FROM order_summaries WHERE id = %s", (placed[1],))

    with pytest.raises(LookupError, match="no partition key"):
        event_log(orders).read_partitioned(after=0, limit=100, partitions=2)


def relay_in(settings_: Settings, orders: Orders, topology: Topology, partitions: int) -> Relay:
    changed = dataclasses.replace(settings_, exchange=topology.exchange, partitions=partitions)
    return Relay(event_log(orders), relay_settings(changed, orders))


async def relay_until_published(relay: Relay, position: int) -> None:
    stopping = asyncio.Event()
    running = asyncio.create_task(relay.run(stopping))
    try:
        await eventually(lambda: relay.position >= position, what=f"relay stored {position}")
    finally:
        stopping.set()
        await running


@pytest.mark.usefixtures("rabbitmq_up")
async def test_the_relay_publishes_the_chains_and_resumes_them_after_a_restart(
    settings_: Settings, orders: Orders, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="servicekit.relay")
    topology = await Topology.declare("partitioned-relay")
    try:
        placed = place_and_move(orders, 20)
        log = event_log(orders)
        await relay_until_published(
            relay_in(settings_, orders, topology, 1), log.last_position() or 0
        )  # first unpartitioned: a change of layout looks the chains up
        first = len(log.read(after=0, limit=1000))
        unpartitioned = await topology.collect(lambda got: len(got) >= first)
        for _ in range(2):  # then in 4, twice: the second resumes the stored chains
            placed += place_and_move(orders, 10)
            await relay_until_published(
                relay_in(settings_, orders, topology, 4), log.last_position() or 0
            )
        everything = log.read(after=0, limit=1000)
        rest = len(everything) - first
        received = await topology.collect(lambda got: len(got) >= rest)
    finally:
        await topology.delete()

    published = [decode(d.body) for d in received]
    expected = expected_chains(everything, customers_of(orders, placed), 4)
    assert [(e.position, e.partition, e.previous_position) for e in published] == expected[
        len(unpartitioned) :
    ]
    assert [d.partition for d in received] == [e.partition for e in published]
    assert {d.partition for d in unpartitioned} == {None}
    looked_up = [r for r in caplog.records if "publishes in 4 partitions" in r.getMessage()]
    assert len(looked_up) == 1  # at the change of layout; the restart read the stored chains
