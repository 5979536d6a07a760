"""Partitioned read models, black-box: four partitions shared by two projector processes,
each holding two; every order counted once; a projector killed mid-batch hands its
partitions to the other within seconds, with nothing lost or counted twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest

from contracts.messaging import partition_queue
from contracts.partitions import Partition, layout
from order_service.application import Orders
from projections.orders_count import OrdersCount
from projections.tracking import SESSION_LOCK, SESSION_UNLOCK, partition_name
from tests.broker import Topology
from tests.e2e.conftest import System, running_system
from tests.e2e.orders import WIDGET
from tests.support import (
    Databases,
    Worker,
    eventually,
    fill_orders,
    ordersystem,
    projector_process,
    relay_process,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("rabbitmq_up")]
PARTITIONS = 4
GROUP = f"orders_by_status+orders_count/{PARTITIONS}"


@pytest.fixture
async def system(databases: Databases) -> AsyncIterator[System]:
    env = {"ORDER_PARTITIONS": str(PARTITIONS), "PROJECTION_BATCH_SIZE": "50"}
    async with running_system(databases, env=env) as running:
        yield running


@pytest.fixture
def orders(system: System) -> Iterator[Orders]:
    app = Orders(env=system.orders_db.eventsourcing_env())
    yield app
    app.close()


def query(system: System, statement: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(system.customers_db.conninfo(), autocommit=True) as conn:
        return conn.execute(statement, args).fetchall()


def holders(system: System) -> dict[str, str]:
    """Each held partition, and the application name of the session holding its claim."""
    found = {}
    for partition in (str(p) for p in layout(PARTITIONS)):
        rows = query(
            system,
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " CROSS JOIN LATERAL (SELECT hashtext('claim:' || %s || ':' || %s)::bigint) AS k(key)"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid = ((k.key >> 32) & 4294967295)::oid"
            " AND l.objid = (k.key & 4294967295)::oid",
            GROUP,
            partition,
        )
        if rows:
            found[partition] = str(rows[0][0])
    return found


def pid_of(application_name: str) -> int:
    """The process whose claims session this is: its member name holds the process id."""
    return int(application_name.split(":")[1])


def pids(workers: list[Worker]) -> list[int]:
    return [w.process.pid for w in workers if w.process is not None]


async def balanced(system: System) -> None:
    """Until both projectors hold two partitions each (the first to start takes all four,
    then lets two go when the second one's heartbeat shows)."""

    def two_each() -> bool:
        held = [pid_of(h) for h in holders(system).values()]
        return len(held) == PARTITIONS and sorted(held.count(p) for p in set(held)) == [2, 2]

    await eventually(two_each, within=20, what="two projectors holding two partitions each")


def projectors(system: System) -> list[Worker]:
    return [system.workers["projector"], system.workers["projector-2"]]


async def counted_exactly(system: System, within: float = 30) -> None:
    await eventually(
        system.counted_exactly,
        within=within,
        what="orders_count to equal what the order service stored",
    )


async def test_two_projectors_hold_two_partitions_each_and_count_every_order_once(
    system: System, orders: Orders
) -> None:
    await balanced(system)
    fill_orders(orders, 2000)  # customers 1..5: every partition has some

    await counted_exactly(system)

    by_holder: dict[str, int] = {}
    for holder in holders(system).values():
        by_holder[holder] = by_holder.get(holder, 0) + 1
    assert sorted(by_holder.values()) == [2, 2]
    assert sorted(pid_of(h) for h in by_holder) == sorted(pids(projectors(system)))
    applied = query(
        system,
        "SELECT name, applied FROM projection_positions WHERE name LIKE 'orders_count/%%of4'",
    )
    assert sorted(str(name) for name, _ in applied) == [
        partition_name(OrdersCount.name, str(p)) for p in layout(PARTITIONS)
    ]
    assert sum(int(n) for _, n in applied) == 2000  # type: ignore[call-overload]
    verified = await asyncio.to_thread(
        ordersystem, "verify", "orders-count", env=system.projector_env()
    )
    assert verified.returncode == 0, verified.stderr


async def test_a_projector_killed_mid_batch_hands_its_partitions_over_within_ten_seconds(
    system: System, orders: Orders
) -> None:
    await balanced(system)
    fill_orders(orders, 500)
    await counted_exactly(system)
    # Customer 1's partition: hold its batches open with the read model's own lock.
    partition = str(Partition.of(1, PARTITIONS))
    victim_pid = pid_of(holders(system)[partition])
    (victim,) = [w for w in projectors(system) if pids([w]) == [victim_pid]]
    (survivor_pid,) = set(pids(projectors(system))) - {victim_pid}
    tracking = partition_name(OrdersCount.name, partition)
    with psycopg.connect(system.customers_db.conninfo(), autocommit=True) as holder:
        holder.execute(SESSION_LOCK, (tracking,))
        fill_orders(orders, 500)
        await eventually(
            lambda: bool(
                query(system, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ),
            within=20,
            what="a batch of the partition waiting inside its transaction",
        )
        victim.kill()
        killed_at = time.monotonic()
        holder.execute(SESSION_UNLOCK, (tracking,))

    everything = {str(p): survivor_pid for p in layout(PARTITIONS)}
    await eventually(
        lambda: {p: pid_of(h) for p, h in holders(system).items()} == everything,
        within=10,
        what="the survivor holding every partition",
    )
    handed_over = time.monotonic() - killed_at
    await counted_exactly(system)

    assert handed_over < 10
    assert system.counts() == system.orders_per_customer()  # nothing lost, nothing twice


async def keep_placing(system: System, stop: asyncio.Event) -> int:
    """Orders of customers 1 to 5, one after another, until `stop`; how many were created.
    Their payments move some to cancelled, so orders_by_status changes too."""
    placed = 0
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        while not stop.is_set():
            body = {**WIDGET, "customer_id": 1 + placed % 5}
            response = await client.post("/api/v1/orders", json=body)
            assert response.status_code == 201, response.text
            placed += 1
    return placed


def relay_layout(system: System) -> int:
    with psycopg.connect(system.orders_db.conninfo()) as conn:
        row = conn.execute(
            "SELECT partitions FROM relay_positions WHERE name = 'orders'"
        ).fetchone()
    return int(row[0]) if row else 0


async def test_changing_from_one_to_four_partitions_on_a_live_system(databases: Databases) -> None:
    async with running_system(databases) as system:  # one partition: as ever
        new_layout = {**system.projector_env(), "ORDER_PARTITIONS": str(PARTITIONS)}
        stop = asyncio.Event()
        load = asyncio.create_task(keep_placing(system, stop))
        new_projectors = [projector_process(new_layout) for _ in range(2)]
        try:
            await eventually(lambda: sum(system.counts().values()) >= 50, within=20)
            # 1. The new layout's projectors start, and wait: their rows do not exist yet.
            for projector in new_projectors:
                projector.start()
            # 2. The relay publishes in four partitions; the old projector heals each of
            # their messages from the feed, so it goes on counting.
            system.workers["relay"].stop()
            system.workers["relay"] = relay_process(
                {**system.orders.env, "ORDER_PARTITIONS": str(PARTITIONS)}
            ).start()
            await eventually(lambda: relay_layout(system) == PARTITIONS, within=20)
            # 3. The documented operation.
            changed = await asyncio.to_thread(
                ordersystem, "repartition", str(PARTITIONS), env=new_layout
            )
            assert changed.returncode == 0, changed.stderr
            # 4. The old layout's projector has nothing left to do.
            system.workers["projector"].stop()
            placed_after = sum(system.counts().values())
            await eventually(
                lambda: sum(system.counts().values()) >= placed_after + 50,
                within=20,
                what="the new layout counting",
            )
        finally:
            stop.set()
            placed = await load
        try:
            await counted_exactly(system)
            for which in ("orders-count", "orders-by-status"):
                verified = await asyncio.to_thread(ordersystem, "verify", which, env=new_layout)
                assert verified.returncode == 0, verified.stderr
            rows = query(system, "SELECT name FROM projection_positions ORDER BY name")
        finally:
            for projector in new_projectors:
                projector.stop()
            for queue in (partition_queue(system.projection_queue, str(p)) for p in layout(4)):
                await Topology(exchange="", queue=queue).delete_queues()

    assert sum(system.orders_per_customer().values()) == placed
    assert [str(name) for (name,) in rows] == sorted(
        partition_name(model, str(p))
        for model in ("orders_by_status", "orders_count")
        for p in layout(PARTITIONS)
    )
