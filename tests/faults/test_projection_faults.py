"""orders_count under faults, with real processes: kill -9, lost messages, poison, a rebuild.

Each test runs twice: with the order log unpartitioned and one projector, and with the log
in four partitions shared by two projector processes (docs/decisions/0015)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from functools import partial

import aio_pika
import httpx
import psycopg
import pytest

from contracts.codec import encode
from contracts.messaging import partition_queue
from contracts.partitions import layout
from order_service.application import Orders
from order_service.relay import event_log
from projections.projector import ProjectorSettings, declare_topology, stream_subscription
from servicekit.messaging import declare_consumer_queue
from tests.broker import AMQP_URL, publish_raw, queue_exists
from tests.e2e.conftest import System, start_system
from tests.support import (
    Databases,
    ServiceProcess,
    Worker,
    eventually,
    fill_orders,
    ordersystem,
    projector_process,
    relay_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq_up")]


@pytest.fixture(params=[1, 4], ids=["unpartitioned", "4 partitions"])
async def system(databases: Databases, request: pytest.FixtureRequest) -> AsyncIterator[System]:
    """Both APIs; the relay and the projectors are started by each test as it needs."""
    running = start_system(databases, env={"ORDER_PARTITIONS": str(request.param)})
    yield running
    running.stop()
    await running.delete_messaging()


class Projectors:
    """The projector processes of a test: one, or two sharing the partitions."""

    def __init__(self, system: System, env: dict[str, str] | None = None) -> None:
        self.workers = [
            projector_process(env or system.projector_env()) for _ in system.projectors()
        ]

    def start(self) -> Projectors:
        for worker in self.workers:
            worker.start()
        return self

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


async def queues_declared(system: System) -> None:
    for queue in system.projection_queues():
        await eventually(partial(queue_exists, queue), within=20, what=f"queue {queue}")


@pytest.fixture
def orders(system: System) -> Iterator[Orders]:
    app = Orders(env=system.orders_db.eventsourcing_env())
    yield app
    app.close()


def projection_row(system: System) -> dict[str, int]:
    return system.tracking()


async def cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """`ordersystem ARGS` against this system's read model (off the event loop)."""
    return await asyncio.to_thread(ordersystem, *args, env=system.projector_env())


async def caught_up(system: System, position: int, within: float = 60) -> None:
    await eventually(
        lambda: system.applied_up_to(position),
        within=within,
        what=f"the projection to reach {position}",
    )


async def declare_projector_queue(system: System) -> None:
    """The projector's own topology (each partition's queue, if partitioned), as it declares
    it, before anything is published."""
    subscription = stream_subscription(AMQP_URL, system.exchange, system.projection_queue)
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        if system.partitions == 1:
            await declare_topology(
                channel, ProjectorSettings(conninfo="", subscription=subscription)
            )
            return
        for partition in (str(p) for p in layout(system.partitions)):
            queue = partition_queue(subscription.queue, partition)
            await declare_consumer_queue(
                channel, system.exchange, queue, subscription.bindings, partition
            )


async def test_kill_9_of_the_projector_mid_batch_then_restart_is_exact(
    system: System, orders: Orders
) -> None:
    await declare_projector_queue(system)
    positions = fill_orders(orders, 3000)
    env = {**system.projector_env(), "PROJECTION_BATCH_SIZE": "100"}
    relay = relay_process(system.orders.env).start()
    first = Projectors(system, env).start()
    try:
        await eventually(lambda: projection_row(system)["applied"] >= 600, within=60)
        first.kill()
        killed_at = projection_row(system)["applied"]
        second = Projectors(system, env).start()
        try:
            await caught_up(system, positions[-1])
        finally:
            second.stop()
    finally:
        relay.stop()

    assert killed_at < len(positions), "the projector finished before it could be killed"
    assert system.counts() == system.orders_per_customer()
    assert projection_row(system)["applied"] == len(positions)
    assert (await cli(system, "verify", "orders-count")).returncode == 0


async def test_lost_and_poisoned_messages_are_healed_from_the_feed(
    system: System, orders: Orders
) -> None:
    env = {**system.projector_env(), "PROJECTION_CATCH_UP_INTERVAL": "3600"}  # messages only
    projector = Projectors(system, env).start()
    try:
        await queues_declared(system)
        fill_orders(orders, 20)
        log = event_log(orders)
        published = (
            log.read(after=0, limit=100)
            if system.partitions == 1
            else log.read_partitioned(after=0, limit=100, partitions=system.partitions)
        )
        for envelope in published:
            if envelope.position == 5:
                continue  # lost on the way
            body = encode(envelope) if envelope.position != 12 else b"\x00 mangled"
            headers: dict[str, int | str] = {"position": envelope.position, "schema_version": 1}
            if envelope.partition is not None:
                headers["partition"] = envelope.partition  # what routes it to its queue
            await publish_raw(system.exchange, body, envelope.type, headers)

        await caught_up(system, published[-1].position, within=30)
    finally:
        projector.stop()

    row = projection_row(system)
    assert system.counts() == system.orders_per_customer()
    assert row["applied"] == 20
    assert row["healed"] >= 2  # 5 (lost) and 12 (poison) came from the feed
    assert row["poisoned"] == 1


async def test_a_lost_last_message_is_healed_by_the_idle_catch_up(
    system: System, orders: Orders
) -> None:
    env = {**system.projector_env(), "PROJECTION_CATCH_UP_INTERVAL": "0.5"}
    projector = Projectors(system, env).start()
    try:
        await queues_declared(system)
        fill_orders(orders, 3)  # published by nobody: as if every message were lost

        await caught_up(system, 3, within=15)
    finally:
        projector.stop()

    assert system.counts() == system.orders_per_customer()


async def test_a_rebuild_during_live_traffic_is_exact_and_verify_agrees(
    system: System, orders: Orders
) -> None:
    await declare_projector_queue(system)
    fill_orders(orders, 2000)
    workers: list[Worker | Projectors] = [
        relay_process(system.orders.env).start(),
        Projectors(system).start(),
    ]
    try:
        traffic = asyncio.create_task(live_traffic(system, orders_count=200))
        rebuilt = await cli(system, "rebuild", "orders-count")
        created = await traffic
        assert rebuilt.returncode == 0, rebuilt.stderr
        last = fill_orders(orders, 0)[-1]
        await caught_up(system, last)
    finally:
        for worker in workers:
            worker.stop()

    assert created == 200
    assert "rebuilt orders-count up to position" in rebuilt.stdout
    assert system.counts() == system.orders_per_customer()
    assert (await cli(system, "verify", "orders-count")).returncode == 0


async def live_traffic(system: System, orders_count: int) -> int:
    """Orders over HTTP, one after another, while something else happens; how many made it."""
    created = 0
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        for n in range(orders_count):
            body = {"customer_id": 1 + n % 5, "product_name": "live", "quantity": 1, "price": "1"}
            created += (await client.post("/api/v1/orders", json=body)).status_code == 201
    return created


async def test_verify_names_a_drifted_customer_and_a_rebuild_repairs_it(
    system: System, orders: Orders
) -> None:
    fill_orders(orders, 50)
    projector = Projectors(system).start()
    try:
        await queues_declared(system)
        await caught_up(system, 50, within=30)
    finally:
        projector.stop()
    with psycopg.connect(system.customers_db.conninfo()) as conn:
        conn.execute("UPDATE orders_count SET orders_count = 999 WHERE customer_id = 3")

    drifted = await cli(system, "verify", "orders-count")
    rebuilt = await cli(system, "rebuild", "orders-count")

    assert drifted.returncode == 1
    assert "DRIFT orders_count customer_id=3" in drifted.stderr
    assert "1 difference(s)" in drifted.stdout
    assert rebuilt.returncode == 0
    assert (await cli(system, "verify", "orders-count")).returncode == 0
    assert system.counts() == system.orders_per_customer()


async def test_readiness_fails_while_the_projection_is_stalled_and_recovers(
    system: System, orders: Orders
) -> None:
    impatient = ServiceProcess(
        "customers", {**system.projector_env(), "PROJECTION_STALL_AFTER": "0.2"}
    ).start()
    try:
        fill_orders(orders, 5)  # events exist, and no projector is running

        async with httpx.AsyncClient() as client:
            stalled = await client.get(f"{impatient.url}/health/ready")
        projector = Projectors(system).start()
        try:
            await caught_up(system, 5, within=30)
            async with httpx.AsyncClient() as client:
                recovered = await client.get(f"{impatient.url}/health/ready")
        finally:
            projector.stop()
    finally:
        impatient.stop()

    assert stalled.status_code == 503
    assert "stalled" in str(stalled.json()["checks"]["orders_count_projection"])
    assert recovered.status_code == 200
    assert recovered.json()["checks"]["orders_count_projection"]["lag"] == 0
