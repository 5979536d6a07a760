"""`make bench-partitions`: how fast a partitioned read model applies, by partitions and processes.

For each layout of P in PARTITIONS_P (default 1,2,4) and each number K of projector
processes in PARTITIONS_K (default 1,2,3,4), PARTITIONS_ROUNDS times (default 2, the
configurations interleaved), on databases, exchanges and queues of its own:

1. K projector processes keep both read models, as `ordersystem run` starts them, and share
   the P partitions. The event feed is left unreachable, so they apply what their queues
   bring and nothing else.
2. Once every partition is held (K > 1: fairly), the test holds every partition's lock, so
   each batch waits inside its transaction. The order relay then publishes
   PARTITIONS_EVENTS order events (default 30,000, customers 1..1000, stored once for every
   run) into the partitions' queues.
3. Once all of it is published, the locks are let go, and the projectors apply the backlog.
   The figure is events applied per second from then until the last one is applied, and
   the CPU of every projector, Postgres and RabbitMQ over that time, from /proc.

With P = 1 it runs one process only: more would take turns per batch on the one queue,
and heal each other's gaps from the feed, which is the limit partitions are there to lift.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aio_pika
import psycopg

from bench import explain
from bench.procfs import cpu_seconds, pids_named, with_children
from bench.scenarios import bench_prefix
from contracts.events import ORDER_EVENTS_BINDING
from contracts.messaging import partition_queue, partitioned_exchange
from contracts.partitions import layout
from customer_service.projector import queue_name
from order_service.application import MIGRATIONS, Orders
from order_service.domain import Order
from ordersystem.commands import READ_MODELS
from projections.orders_count import OrdersCount
from projections.tracking import SESSION_LOCK, SESSION_UNLOCK, tracked_names
from servicekit.messaging import declare_consumer_queue
from tests.broker import AMQP_URL, Topology
from tests.support import Databases, Worker, eventually

CUSTOMERS = 1000
UNREACHABLE_FEED = "http://127.0.0.1:9"  # nothing listens: no catch-up, no healing


def say(text: str) -> None:
    print(f"[bench-partitions {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass(frozen=True)
class Apply:
    partitions: int
    processes: int
    events: int
    seconds: float
    cpu: dict[str, float]  # seconds over the apply, by process

    def line(self) -> str:
        per = 1000 / self.events
        spent = ", ".join(f"{name} {cpu * per:.3f}" for name, cpu in self.cpu.items())
        return (
            f"P={self.partitions} K={self.processes}: {self.events / self.seconds:,.0f} events/s"
            f" ({self.seconds:.2f} s); CPU ms per event: {spent}"
        )


def fill(orders: Orders, count: int) -> int:
    """`count` orders of customers 1..CUSTOMERS, 500 per transaction; the last position."""
    for start in range(0, count, 500):
        batch = [
            Order.place(
                order_id=uuid.uuid4(),
                customer_id=1 + n % CUSTOMERS,
                product_name="load",
                quantity=1,
                price=Decimal("1.00"),
            )
            for n in range(start, min(start + 500, count))
        ]
        orders.save_orders(*batch)
    return int(orders.recorder.max_notification_id() or 0)


async def declare_queues(exchange: str, queue: str, partitions: int) -> list[str]:
    """The projectors' queues, declared before anything is published."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        if partitions == 1:
            await declare_consumer_queue(channel, exchange, queue, (ORDER_EVENTS_BINDING,))
            return [queue]
        names = []
        for partition in (str(p) for p in layout(partitions)):
            name = partition_queue(queue, partition)
            await declare_consumer_queue(
                channel, exchange, name, (ORDER_EVENTS_BINDING,), partition
            )
            names.append(name)
        return names


def applied(conn: psycopg.Connection[Any], partitions: int) -> int:
    """Events orders_count has applied, over its partitions (one open connection asks, so
    the polling costs Postgres no new backend each time)."""
    names = tracked_names(OrdersCount.name, partitions)
    row = conn.execute(
        "SELECT coalesce(sum(applied), 0) FROM projection_positions WHERE name = ANY(%s)",
        (names,),
    ).fetchone()
    return int(row[0]) if row else 0


def fairly_claimed(conninfo: str, partitions: int, processes: int) -> bool:
    """Whether the claims' sessions hold the partitions in fair shares, as settled."""
    base, extra = divmod(partitions, processes)
    fair = sorted(n for n in (base + (r < extra) for r in range(processes)) if n)
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " GROUP BY pid"
        ).fetchall()
    return sorted(int(row[0]) for row in rows) == fair


def relayed(orders_conninfo: str, last: int) -> bool:
    with psycopg.connect(orders_conninfo) as conn:
        row = conn.execute(
            "SELECT last_published FROM relay_positions WHERE name = 'orders'"
        ).fetchone()
    return row is not None and int(row[0]) >= last


async def one_run(
    databases: Databases, orders_db: object, last: int, events: int, partitions: int, processes: int
) -> Apply:
    prefix = f"{bench_prefix()}.parts.p{partitions}k{processes}"
    read_db = databases.fresh(f"bench_apply_p{partitions}k{processes}")
    exchange, queue = f"{prefix}.orders", queue_name(f"{prefix}.read", READ_MODELS)
    env = {
        "CUSTOMERS_DB": read_db.dbname,
        "ORDER_SERVICE_URL": UNREACHABLE_FEED,
        "ORDERS_EXCHANGE": exchange,
        "PROJECTION_QUEUE_PREFIX": f"{prefix}.read",
        "ORDER_PARTITIONS": str(partitions),
        "PROJECTION_CATCH_UP_INTERVAL": "3600",
        "LOG_LEVEL": "WARNING",
    }
    queues = await declare_queues(exchange, queue, partitions)
    projectors = [Worker(("project", *READ_MODELS), env).start() for _ in range(processes)]
    orders_conninfo = orders_db.conninfo()  # type: ignore[attr-defined]
    with psycopg.connect(orders_conninfo, autocommit=True) as conn:
        conn.execute("UPDATE relay_positions SET last_published = 0, chain = NULL")
    relay = Worker(
        ("relay", "orders"),
        {
            "ORDERS_DB": orders_db.dbname,  # type: ignore[attr-defined]
            "ORDERS_EXCHANGE": exchange,
            "ORDER_PARTITIONS": str(partitions),
            "LOG_LEVEL": "WARNING",
        },
    )
    conninfo = read_db.conninfo()
    try:
        if partitions > 1:
            await eventually(
                lambda: fairly_claimed(conninfo, partitions, processes), within=60, what="claims"
            )
        names = sorted(
            name
            for model in ("orders_by_status", "orders_count")
            for name in tracked_names(model, partitions)
        )
        await eventually(lambda: _rows(conninfo, names), within=60, what="tracking rows")
        with psycopg.connect(conninfo, autocommit=True) as holder:
            for name in names:
                holder.execute(SESSION_LOCK, (name,))
            relay.start()
            await eventually(lambda: relayed(orders_conninfo, last), within=300, what="relayed")
            family = {
                f"projector {n + 1}": with_children(w.process.pid)
                for n, w in enumerate(projectors)
                if w.process is not None
            }
            family["postgres"] = pids_named("postgres")
            family["rabbitmq"] = pids_named("beam.smp")
            watching = psycopg.connect(conninfo, autocommit=True)
            before = {name: cpu_seconds(pids) for name, pids in family.items()}
            started = time.monotonic()
            for name in names:
                holder.execute(SESSION_UNLOCK, (name,))
        with watching:
            await eventually(lambda: applied(watching, partitions) >= events, within=600)
        seconds = time.monotonic() - started
        spent = {name: cpu_seconds(pids) - before[name] for name, pids in family.items()}
    finally:
        relay.stop()
        for projector in projectors:
            projector.stop()
        for name in queues:
            await Topology(exchange="", queue=name).delete_queues()
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.exchange_delete(partitioned_exchange(exchange))
            await channel.exchange_delete(exchange)
    return Apply(partitions, processes, events, seconds, spent)


def _rows(conninfo: str, names: list[str]) -> bool:
    with psycopg.connect(conninfo) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM projection_positions WHERE name = ANY(%s)", (names,)
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return row is not None and int(row[0]) == len(names)


async def measure(layouts: list[int], counts: list[int], events: int, rounds: int) -> list[Apply]:
    databases = Databases()
    try:
        orders_db = databases.fresh("bench_apply_orders", MIGRATIONS)
        orders = Orders(env=orders_db.eventsourcing_env())
        try:
            say(f"storing {events:,} orders of {CUSTOMERS} customers")
            last = fill(orders, events)
        finally:
            orders.close()
        found = []
        for round_ in range(rounds):  # the configurations interleaved, round after round
            say(f"round {round_ + 1} of {rounds}")
            for partitions in layouts:
                for processes in counts if partitions > 1 else [1]:
                    result = await one_run(
                        databases, orders_db, last, events, partitions, processes
                    )
                    say(result.line())
                    found.append(result)
        return found
    finally:
        databases.drop_all()


def main(argv: list[str] | None = None) -> int:
    explain(__doc__, "python -m bench.partitions", argv)
    layouts = [int(p) for p in os.environ.get("PARTITIONS_P", "1,2,4").split(",")]
    counts = [int(k) for k in os.environ.get("PARTITIONS_K", "1,2,3,4").split(",")]
    events = int(os.environ.get("PARTITIONS_EVENTS", "30000"))
    rounds = int(os.environ.get("PARTITIONS_ROUNDS", "2"))
    asyncio.run(measure(layouts, counts, events, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
