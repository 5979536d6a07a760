"""The order store's benchmarks, each alone: appends, the library's transcoding, the relay."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import aio_pika
from eventsourcing.application import Application
from eventsourcing.persistence import Mapper

from contracts.codec import encode
from order_service.application import MIGRATIONS, Orders
from order_service.domain import Order
from order_service.relay import event_log, relay_settings
from order_service.settings import Settings as OrderSettings
from order_service.usecases import PlaceOrder
from servicekit.relay import Publisher, Relay, properties
from servicekit.transcoder import TRANSCODER_ENV
from tests.broker import AMQP_URL
from tests.support import RUN_ID, Databases, eventually, fill_orders

Figures = dict[str, Any]


def appends(databases: Databases, *, orders: int = 4000, threads: int = 64) -> Figures:
    """Event store appends from many threads: one transaction per save vs group commit."""
    figures: Figures = {}
    command = PlaceOrder(customer_id=1, product_name="bench", quantity=1, price=Decimal("1"))
    for mode in ("single", "group"):
        database = databases.fresh(f"appends_{mode}", MIGRATIONS)
        env = {**database.eventsourcing_env(), "POSTGRES_POOL_SIZE": str(threads + 4)}
        app = Orders(env=env, group_commit=mode == "group")
        try:
            for _ in range(20):
                app.place(command)  # warm up: connections, prepared statements
            started = time.monotonic()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda _, place=app.place: place(command), range(orders)))
            figures[f"{mode}_per_s"] = orders / (time.monotonic() - started)
            if app.committer is not None:
                figures["mean_batch"] = app.committer.stats.mean_batch
        finally:
            app.close()
    figures["ratio"] = figures["group_per_s"] / figures["single_per_s"]
    return figures


def transcoding(*, events: int = 20_000, rounds: int = 5) -> Figures:
    """The library's per-event Python cost, store and load (`Mapper.to_stored_event` and
    `to_domain_event`), with its JSON transcoder and with the msgspec one the applications
    use; interleaved rounds, the best of each."""
    mappers: dict[str, Mapper[Any]] = {
        "json": Application().mapper,  # the library's own transcoder
        "msgspec": Application(env=TRANSCODER_ENV).mapper,
    }
    sample: list[Any] = []
    while len(sample) < events:
        order = Order.place(
            order_id=uuid.uuid4(), customer_id=7, product_name="bench", quantity=2,
            price=Decimal("9.99"), correlation_id="req-1",
        )  # fmt: skip
        order.confirm("req-2")
        sample += order.collect_events()
    best = dict.fromkeys(mappers, float("inf"))
    for _ in range(rounds):
        for name, mapper in mappers.items():
            started = time.perf_counter()
            stored = [mapper.to_stored_event(e) for e in sample]
            for item in stored:
                mapper.to_domain_event(item)
            best[name] = min(best[name], time.perf_counter() - started)
    same = all(
        mappers["json"].to_stored_event(e).state == mappers["msgspec"].to_stored_event(e).state
        for e in sample[:1000]
    )
    figures: Figures = {f"{name}_us": 1e6 * t / len(sample) for name, t in best.items()}
    figures["ratio"] = figures["msgspec_us"] / figures["json_us"]
    figures["same_bytes"] = same
    return figures


async def relay(databases: Databases, prefix: str, *, events: int = 20_000) -> Figures:
    """The relay publishing a backlog, beside a plain pipelined publish-with-confirms loop."""
    database = databases.fresh("bench_relay", MIGRATIONS)
    orders = Orders(env=database.eventsourcing_env())
    fill_orders(orders, events)
    log = event_log(orders)
    envelopes = log.read(after=0, limit=events)
    figures: Figures = {}
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        for name in ("relay", "plain"):
            exchange = await channel.declare_exchange(
                f"{prefix}.{name}", aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(f"{prefix}.{name}.q", durable=True)
            await queue.bind(exchange, "order.#")
        # The plain loop: windows of 1,000, the same bytes, published the fastest way the
        # libraries allow (through aio-pika's own aiormq channel, not waiting for each
        # frame to be flushed; DESIGN's figure for this loop used exchange.publish).
        underlay = (await Publisher.on(channel, exchange.name)).channel
        started = time.monotonic()
        for start in range(0, len(envelopes), 1000):
            window = envelopes[start : start + 1000]
            await asyncio.gather(
                *(
                    underlay.basic_publish(
                        encode(e),
                        exchange=exchange.name,
                        routing_key=e.type,
                        properties=properties(e),
                        mandatory=True,
                        wait=False,
                    )
                    for e in window
                )
            )
        figures["plain_per_s"] = events / (time.monotonic() - started)

        settings = OrderSettings(postgres=database, exchange=f"{prefix}.relay")
        relaying = Relay(log, relay_settings(settings, orders))
        stopping = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(relaying.run(stopping))
        await eventually(lambda: relaying.position >= envelopes[-1].position, within=120)
        figures["relay_per_s"] = events / (time.monotonic() - started)
        stopping.set()
        await task
        for name in ("relay", "plain"):
            await channel.queue_delete(f"{prefix}.{name}.q")
            await channel.exchange_delete(f"{prefix}.{name}")
    orders.close()
    figures["ratio"] = figures["relay_per_s"] / figures["plain_per_s"]
    return figures


# bench/ab.py's measuring script calls it as scenarios.bench_prefix, in every revision.
def bench_prefix() -> str:
    return f"bench{RUN_ID}"
