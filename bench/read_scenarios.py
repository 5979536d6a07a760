"""The read side's benchmarks: a projector catching up on a backlog, a rebuild from the feed."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import aio_pika

from bench.procfs import peak_rss_mb, with_children
from bench.scenarios import Figures
from contracts.codec import encode, envelope
from contracts.events import OrderCreatedV1
from contracts.messaging import dead_letter_names
from customer_service.store import migrate
from order_service.application import MIGRATIONS, Orders
from projections.feed import FeedClient
from projections.orders_count import OrdersCount
from projections.projector import (
    Projector,
    ProjectorSettings,
    declare_topology,
    stream_subscription,
)
from projections.rebuild import rebuild
from tests.broker import AMQP_URL
from tests.support import Databases, ServiceProcess, eventually, fill_orders


def _synthetic(count: int) -> list[bytes]:
    """A chained stream of order.created envelopes, as the relay would publish them."""
    bodies, previous = [], None
    for position in range(1, count + 1):
        data = OrderCreatedV1(
            order_id=uuid.uuid4(),
            customer_id=1 + position % 1000,
            product_name="bench",
            quantity=1,
            price=Decimal("1.00"),
            status="pending",
        )
        bodies.append(
            encode(
                envelope(
                    data,
                    id=uuid.uuid4(),
                    position=position,
                    previous_position=previous,
                    occurred_at=datetime.now(UTC),
                    correlation_id="",
                )
            )
        )
        previous = position
    return bodies


async def projection(databases: Databases, prefix: str, *, backlog: int = 100_000) -> Figures:
    """Catch-up on a backlog beside a plain consume loop (ack every 500, multiple)."""
    bodies = _synthetic(backlog)
    database = databases.fresh("bench_projection")
    migrate(database)
    settings = ProjectorSettings(
        conninfo=database.conninfo(),
        subscription=stream_subscription(AMQP_URL, f"{prefix}.backlog", f"{prefix}.backlog.count"),
    )
    queue = settings.subscription
    figures: Figures = {}
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, settings)
        plain = await channel.declare_queue(f"{prefix}.backlog.plain", durable=True)
        exchange = await channel.get_exchange(queue.exchange)
        await plain.bind(exchange, "order.#")
        for start in range(0, backlog, 1000):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(b, headers={"position": start + i + 1}), "order.created"
                    )
                    for i, b in enumerate(bodies[start : start + 1000])
                )
            )

        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=1000)
        started, taken = time.monotonic(), 0
        async with plain.iterator() as messages:
            async for incoming in messages:
                taken += 1
                if taken % 500 == 0 or taken == backlog:
                    await incoming.ack(multiple=True)
                if taken == backlog:
                    break
        figures["plain_per_s"] = backlog / (time.monotonic() - started)

        feed = FeedClient("http://127.0.0.1:9")  # no gaps here: the feed is never needed
        projector = Projector([OrdersCount()], settings, feed)
        stopping = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(projector.run(stopping))
        await eventually(lambda: projector.stats.applied >= backlog, within=300)
        figures["projector_per_s"] = backlog / (time.monotonic() - started)
        stopping.set()
        await task
        await feed.aclose()
        dlx, dlq = dead_letter_names(queue.queue)
        for name in (queue.queue, dlq, plain.name):
            await channel.queue_delete(name)
        await channel.exchange_delete(dlx)
        await channel.exchange_delete(queue.exchange)
    figures["ratio"] = figures["projector_per_s"] / figures["plain_per_s"]
    figures["backlog"] = backlog
    return figures


class _Quiet:
    def advance(self, events: int, position: int, head: int | None) -> None:
        pass


async def rebuild_from_feed(databases: Databases, *, events: int) -> Figures:
    """A rebuild of orders_count from the order service's feed (over HTTP)."""
    orders_db, read_db = databases.fresh("bench_feed", MIGRATIONS), databases.fresh("bench_rebuild")
    orders = Orders(env=orders_db.eventsourcing_env())
    started = time.monotonic()
    fill_orders(orders, events)
    fill_seconds = time.monotonic() - started
    orders.close()
    migrate(read_db)
    api = ServiceProcess("orders", {"ORDERS_DB": orders_db.dbname, "LOG_LEVEL": "WARNING"}).start()
    feed = FeedClient(api.url, page_size=5000, timeout=60)
    try:
        started = time.monotonic()
        await rebuild(read_db.conninfo(), [OrdersCount()], feed, _Quiet())
        seconds = time.monotonic() - started
        peak = peak_rss_mb(with_children(api.process.pid)) if api.process else 0.0
    finally:
        await feed.aclose()
        api.stop()
    return {
        "events": events,
        "seconds": seconds,
        "per_s": events / seconds,
        "fill_seconds": fill_seconds,
        "orders_api_peak_mb": peak,
    }
