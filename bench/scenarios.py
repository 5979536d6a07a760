"""Each benchmark scenario: set up on its own databases/exchanges, measure, return figures."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Mapper

from bench.load import Result, closed_loop, open_loop, quiet
from contracts.codec import encode, envelope
from contracts.events import OrderCreatedV1
from contracts.messaging import dead_letter_names
from customer_service.projector import queue_name
from customer_service.store import migrate
from order_service.application import MIGRATIONS, Orders
from order_service.domain import Order
from order_service.relay import event_log, relay_settings
from order_service.settings import Settings as OrderSettings
from order_service.usecases import PlaceOrder
from ordersystem.commands import READ_MODELS
from projections.feed import FeedClient
from projections.orders_count import OrdersCount
from projections.projector import (
    Projector,
    ProjectorSettings,
    declare_topology,
    stream_subscription,
)
from projections.rebuild import rebuild
from servicekit.relay import Relay, message
from servicekit.transcoder import TRANSCODER_ENV
from tests.broker import AMQP_URL, queue_exists
from tests.support import RUN_ID, Databases, ServiceProcess, Worker, eventually, fill_orders

Figures = dict[str, Any]


def _order(i: int) -> dict[str, Any]:
    return {"customer_id": 1 + i % 5, "product_name": "bench", "quantity": 1, "price": "9.99"}


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


@dataclass
class Stack:
    """The whole system as processes: three APIs, two relays, projectors and consumers."""

    customers: ServiceProcess
    orders: ServiceProcess
    payments: ServiceProcess
    workers: list[Worker]
    customers_db: Any
    orders_db: Any
    queues: list[str]
    exchanges: list[str]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for api in (self.orders, self.payments, self.customers):
            api.stop()

    async def queues_declared(self) -> None:
        """Wait (bounded) until every consumer has declared its queue: a relay holds back
        what no queue is bound for yet, and a projector started under load would catch up
        from the feed instead of consuming."""
        for queue in self.queues:
            await eventually(partial(queue_exists, queue), within=30, what=f"queue {queue}")

    async def delete_messaging(self) -> None:
        """The queues and exchanges this stack's processes declared."""
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            for queue in self.queues:
                for name in (queue, f"{queue}.dlq"):
                    await channel.queue_delete(name)
                await channel.exchange_delete(f"{queue}.dlx")
            for exchange in self.exchanges:
                await channel.exchange_delete(exchange)

    def peak_memory_mb(self) -> dict[str, float]:
        processes = {
            "orders API": self.orders.process,
            "customers API": self.customers.process,
            "payments API": self.payments.process,
        }
        processes |= {" ".join(w.command): w.process for w in self.workers}
        return {name: _peak_rss_mb(p.pid) for name, p in processes.items() if p is not None}

    def pids(self) -> dict[str, list[int]]:
        """Every process of the stack with its workers, and the servers it uses."""
        named = {"orders API": self.orders.process, "customers API": self.customers.process}
        named |= {"payments API": self.payments.process}
        named |= {" ".join(w.command): w.process for w in self.workers}
        found = {name: _family(p.pid) for name, p in named.items() if p is not None}
        found["postgres (all backends)"] = _pids_named("postgres")
        found["rabbitmq"] = _pids_named("beam.smp")
        found["load generator"] = [os.getpid()]
        return found


def _family(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(c) for c in children.read_text().split())] if children.exists() else [pid]


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _peak_rss_mb(pid: int) -> float:
    """The largest peak resident size among a process and its children (granian workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    peaks = []
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


def start_stack(databases: Databases, prefix: str, *, whole: bool) -> Stack:
    """The order path (customers, orders, relay, orders-count projector), or with `whole`,
    every process of the system (payments, both relays, both projectors)."""
    customers_db, orders_db = databases.fresh("bench_customers"), databases.fresh("bench_orders")
    payments_db = databases.fresh("bench_payments")
    prefix = f"{prefix}.{'whole' if whole else 'path'}"
    messaging = {
        "ORDERS_EXCHANGE": f"{prefix}.orders",
        "PAYMENTS_EXCHANGE": f"{prefix}.payments",
        "PAYMENT_QUEUE": f"{prefix}.payments.order-created",
        "PAYMENT_RESULTS_QUEUE": f"{prefix}.orders.payment-results",
        "PROJECTION_QUEUE_PREFIX": f"{prefix}.read",
        "LOG_LEVEL": "WARNING",
        # One client (this load generator) drives all the load: the per-client limit, which
        # exists to keep one client from taking the whole service, would cap the measurement.
        "API_RATE_LIMIT": "0",
    }
    customers, orders = ServiceProcess("customers", {}), ServiceProcess("orders", {})
    payments = ServiceProcess("payments", {"PAYMENTS_DB": payments_db.dbname, **messaging})
    read_env = {"CUSTOMERS_DB": customers_db.dbname, "ORDER_SERVICE_URL": orders.url, **messaging}
    customers.env = read_env
    orders.env = {"ORDERS_DB": orders_db.dbname, "CUSTOMER_SERVICE_URL": customers.url, **messaging}
    # The order path keeps orders_count; the whole system keeps every read model, in one
    # projector, as `ordersystem run` does.
    read_models = READ_MODELS if whole else ("orders-count",)
    workers = [
        Worker(("project", *read_models), read_env),
        Worker(("relay", "orders"), orders.env),
    ]
    if whole:
        workers += [
            Worker(("consume", "order-created"), payments.env),
            Worker(("consume", "payment-results"), orders.env),
            Worker(("relay", "payments"), payments.env),
        ]
    for api in (customers, orders, payments) if whole else (customers, orders):
        api.start()
    for worker in workers:
        worker.start()
    queues = [queue_name(f"{prefix}.read", read_models)]
    if whole:
        queues += [messaging["PAYMENT_QUEUE"], messaging["PAYMENT_RESULTS_QUEUE"]]
    exchanges = [messaging["ORDERS_EXCHANGE"], messaging["PAYMENTS_EXCHANGE"]]
    return Stack(customers, orders, payments, workers, customers_db, orders_db, queues, exchanges)


async def http(stack: Stack) -> Figures:
    """POST /api/v1/orders: saturation throughput, then latency at fixed rates."""
    url = f"{stack.orders.url}/api/v1/orders"
    await open_loop(url, _order, rate=200, seconds=2)  # warm up
    figures: Figures = {}
    families = stack.pids()
    before = {name: cpu_seconds(pids) for name, pids in families.items()}
    await quiet()  # what the stack's start-up or an earlier load left running
    saturation = await closed_loop(url, _order, workers=64, seconds=10)
    figures["cpu_seconds"] = {
        name: cpu_seconds(pids) - before[name] for name, pids in families.items()
    }
    figures["wall_seconds"] = saturation.seconds
    figures["saturation_per_s"] = saturation.rate
    figures["saturation_errors"] = saturation.errors
    for rate in (100, 500, 1000):
        await quiet()  # a backlog left by the load before would count in this one
        result = await open_loop(url, _order, rate=rate, seconds=6)
        figures[f"rate_{rate}"] = _latency(result)
    return figures


def _latency(result: Result) -> Figures:
    return {
        "achieved_per_s": result.rate,
        "p50_ms": result.percentile(0.50),
        "p99_ms": result.percentile(0.99),
        "errors": result.errors,
    }


async def end_to_end(stack: Stack, *, rate: int = 200, seconds: float = 8) -> Figures:
    """From POST to the new orders_count being visible, at a fixed rate."""
    await quiet()  # after 1,000/s the payment pipeline is still working off its backlog
    seen: list[tuple[float, int]] = []  # (when, projection position)
    stop = asyncio.Event()

    async def watch() -> None:
        async with await psycopg.AsyncConnection.connect(
            stack.customers_db.conninfo(), autocommit=True
        ) as db:
            while not stop.is_set():
                cursor = await db.execute(
                    "SELECT position FROM projection_positions WHERE name = 'orders_count'"
                )
                row = await cursor.fetchone()
                seen.append((time.monotonic(), int(row[0]) if row else 0))
                await asyncio.sleep(0.002)  # the sampling interval of the measurement

    watcher = asyncio.create_task(watch())
    result = await open_loop(
        f"{stack.orders.url}/api/v1/orders", _order, rate=rate, seconds=seconds
    )
    positions = _positions(stack, [r["id"] for r in result.responses])
    last = max(positions.values())
    await eventually(lambda: bool(seen) and seen[-1][1] >= last, within=30, what="counted")
    stop.set()
    await watcher
    latencies = []
    for due, response in zip(result.dues, result.responses, strict=True):
        position = positions[response["id"]]
        visible = next((when for when, p in seen if p >= position), None)
        if visible is not None:
            latencies.append(visible - due)
    counted = Result(ok=len(latencies), seconds=result.seconds, latencies=latencies)
    return {**_latency(counted), "orders": result.ok, "visible": len(latencies)}


def _positions(stack: Stack, order_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(stack.orders_db.conninfo()) as conn:
        rows = conn.execute(
            "SELECT originator_id::text, notification_id FROM orders_events"
            " WHERE originator_version = 1 AND originator_id = ANY(%s::uuid[])",
            (order_ids,),
        ).fetchall()
    return {order_id: int(position) for order_id, position in rows}


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
        started = time.monotonic()
        for start in range(0, len(envelopes), 1000):  # the plain loop: windows of 1,000
            window = envelopes[start : start + 1000]
            await asyncio.gather(*(exchange.publish(message(e), e.type) for e in window))
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
        await rebuild(read_db.conninfo(), OrdersCount(), feed, _Quiet())
        seconds = time.monotonic() - started
        peak = _peak_rss_mb(api.process.pid) if api.process else 0.0
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


def bench_prefix() -> str:
    return f"bench{RUN_ID}"
