"""The relay with a real Postgres and RabbitMQ, in-process: the envelope contract end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from functools import partial

import aio_pika
import pytest

from contracts.codec import decode, encode
from order_service.application import MIGRATIONS, Orders
from order_service.relay import event_log, relay_settings
from order_service.settings import Settings
from order_service.usecases import PlaceOrder
from servicekit.relay import ConfirmTimeoutError, Publisher, Relay, publish_confirmed, relay_lag
from tests.broker import AMQP_URL, Topology, positions
from tests.support import Databases, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq_up")]


@pytest.fixture
def settings(databases: Databases) -> Settings:
    return Settings(postgres=databases.fresh("relay", MIGRATIONS), relay_page_size=20)


@pytest.fixture
def orders(settings: Settings) -> Iterator[Orders]:
    app = Orders(env=settings.eventsourcing_env())
    yield app
    app.close()


@pytest.fixture
async def topology() -> AsyncIterator[Topology]:
    declared = await Topology.declare("relay")
    yield declared
    await declared.delete()


def relay_for(settings: Settings, orders: Orders, topology: Topology) -> Relay:
    to_topology = dataclasses.replace(settings, exchange=topology.exchange)
    return Relay(event_log(orders), relay_settings(to_topology, orders))


@pytest.fixture
async def relay(settings: Settings, orders: Orders, topology: Topology) -> AsyncIterator[Relay]:
    configured = relay_for(settings, orders, topology)
    stopping = asyncio.Event()
    running = asyncio.create_task(configured.run(stopping))
    yield configured
    stopping.set()
    await running


def place(orders: Orders, count: int, customer_id: int = 1) -> list[str]:
    ids = []
    for n in range(count):
        command = PlaceOrder(
            customer_id=customer_id, product_name=f"item {n}", quantity=n + 1, price=Decimal("1.25")
        )
        ids.append(str(orders.place(command, correlation_id=f"req-{n}").order.id))
    return ids


async def test_every_placed_order_becomes_one_order_created_message_in_order(
    orders: Orders, relay: Relay, topology: Topology
) -> None:
    placed = place(orders, 30)

    received = await topology.collect(lambda got: len(got) >= 30)
    await eventually(lambda: relay.position == received[-1].position, what="relay stored")

    envelopes = [decode(d.body) for d in received]
    assert [str(e.data.order_id) for e in envelopes] == placed  # type: ignore[attr-defined]
    assert positions(received) == sorted(set(positions(received)))
    assert [e.previous_position for e in envelopes] == [None, *positions(received)[:-1]]
    assert {(d.type, d.content_type, d.persistent) for d in received} == {
        ("order.created", "application/json", True)
    }
    assert [d.message_id for d in received] == [str(e.id) for e in envelopes]
    assert [d.correlation_id for d in received] == [f"req-{n}" for n in range(30)]
    assert await queued(topology) == 0  # and nothing more than one per order


async def test_a_batch_published_at_once_arrives_whole_and_in_order(
    orders: Orders, topology: Topology
) -> None:
    place(orders, 300)
    batch = event_log(orders).read(after=0, limit=300)

    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await publish_confirmed(await Publisher.on(channel, topology.exchange), batch)
        assert await queued(topology) == 300  # every message confirmed before the return

    received = await topology.collect(lambda got: len(got) >= 300)
    assert positions(received) == [e.position for e in batch]
    assert [d.body for d in received] == [encode(e) for e in batch]


async def test_the_feed_serves_the_very_envelopes_that_were_published(
    orders: Orders, relay: Relay, topology: Topology
) -> None:
    place(orders, 25)
    received = await topology.collect(lambda got: len(got) >= 25)

    log = event_log(orders)
    feed = log.read(after=0, limit=10) + log.read(after=10, limit=100)

    assert [encode(e) for e in feed] == [d.body for d in received]


async def test_the_feed_chains_from_the_last_position_before_a_page(orders: Orders) -> None:
    place(orders, 5)

    page = event_log(orders).read(after=3, limit=10)

    assert [(e.previous_position, e.position) for e in page] == [(3, 4), (4, 5)]


async def test_readiness_reports_the_relays_lag(
    settings: Settings, orders: Orders, relay: Relay, topology: Topology
) -> None:
    place(orders, 10)
    await topology.collect(lambda got: len(got) >= 10)
    await eventually(lambda: relay.position == 10, what="relay stored 10")

    lag = relay_lag(event_log(orders), settings.postgres.conninfo(), "orders")

    assert lag == {"published_position": 10, "lag": 0}


async def test_an_unroutable_message_holds_the_relay_until_a_queue_is_bound(
    settings: Settings, orders: Orders
) -> None:
    topology = await Topology.declare("unroutable", bound=False)
    lonely = relay_for(settings, orders, topology)
    stopping = asyncio.Event()
    running = asyncio.create_task(lonely.run(stopping))
    place(orders, 3)
    await eventually(lambda: lonely.failures >= 1, what="the relay to meet the unroutable message")
    assert lonely.position == 0  # nothing confirmed, nothing stored

    await topology.bind()
    received = await topology.collect(lambda got: len(got) >= 3)

    assert positions(received) == [1, 2, 3]
    stopping.set()
    await running
    await topology.delete()


async def test_a_backlog_is_read_page_by_page_with_no_empty_read_after_it(
    settings: Settings, orders: Orders, topology: Topology
) -> None:
    place(orders, 45)  # pages of 20: 20, 20 and a short 5, which says the log is drained
    relay = relay_for(settings, orders, topology)
    relay.settings = dataclasses.replace(relay.settings, poll_interval=600)  # NOTIFY only
    stopping = asyncio.Event()
    running = asyncio.create_task(relay.run(stopping))

    received = await topology.collect(lambda got: len(got) >= 45)
    await eventually(lambda: relay.position == 45, what="relay stored 45")
    assert positions(received) == list(range(1, 46))
    assert relay.reads == 3

    place(orders, 1)  # one commit, one NOTIFY: one read, which is short, and nothing more
    await topology.collect(lambda got: len(got) >= 1)
    await eventually(lambda: relay.position == 46, what="relay stored 46")
    assert relay.reads == 4
    stopping.set()
    await running


async def test_the_position_is_stored_once_per_interval_not_once_per_page(
    settings: Settings, orders: Orders, topology: Topology
) -> None:
    relay = relay_for(settings, orders, topology)
    relay.settings = dataclasses.replace(relay.settings, store_interval=600)
    stopping = asyncio.Event()
    running = asyncio.create_task(relay.run(stopping))
    for n in range(1, 6):  # five commits, five wake-ups, five pages of one
        place(orders, 1)
        await eventually(partial(confirmed, relay, n), what=f"{n} confirmed")

    assert relay.reads >= 5
    assert (relay.position, relay.stores) == (0, 0)  # not due yet: nothing written
    assert relay_lag(event_log(orders), settings.postgres.conninfo(), "orders")["lag"] == 5

    stopping.set()
    await running

    assert (relay.position, relay.stores) == (5, 1)  # a clean stop stores what was confirmed
    lag = relay_lag(event_log(orders), settings.postgres.conninfo(), "orders")
    assert lag == {"published_position": 5, "lag": 0}
    assert len(await topology.collect(lambda got: len(got) >= 5)) == 5


def confirmed(relay: Relay, position: int) -> bool:
    return relay.confirmed == position


async def queued(topology: Topology) -> int:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.queue, passive=True)
        return queue.declaration_result.message_count or 0


async def test_a_page_the_broker_never_confirms_fails_the_lead_in_time(
    settings: Settings, orders: Orders, topology: Topology
) -> None:
    """A confirm lost with a queue's leader node must not stall the log for good: the lead
    fails, and starts again from the confirmed position (keep_running)."""
    relay = relay_for(settings, orders, topology)
    relay.settings = dataclasses.replace(relay.settings, confirm_timeout=0.2)
    never_confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sent = time.monotonic()

    with pytest.raises(ConfirmTimeoutError, match=r"within 0\.2 s"):
        await relay._confirm(never_confirmed, 20, sent)

    assert time.monotonic() - sent < 5  # bounded by the timeout, not by the broker
    assert never_confirmed.cancelled()  # and nothing is left waiting on it
