"""orders_count under faults, with real processes: kill -9, lost messages, poison, a rebuild."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator

import aio_pika
import httpx
import psycopg
import pytest

from contracts.codec import encode
from order_service.application import Orders
from order_service.relay import event_log
from projections.projector import ProjectorSettings, declare_topology, stream_subscription
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


@pytest.fixture
async def system(databases: Databases) -> AsyncIterator[System]:
    """Both APIs; the relay and the projector are started by each test as it needs."""
    running = start_system(databases)
    yield running
    running.stop()
    await running.delete_messaging()


@pytest.fixture
def orders(system: System) -> Iterator[Orders]:
    app = Orders(env=system.orders_db.eventsourcing_env())
    yield app
    app.close()


def projection_row(system: System) -> dict[str, int]:
    with psycopg.connect(system.customers_db.conninfo()) as conn:
        try:
            row = conn.execute(
                "SELECT position, applied, duplicates, healed, poisoned"
                " FROM projection_positions WHERE name = 'orders_count'"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
    keys = ("position", "applied", "duplicates", "healed", "poisoned")
    return dict(zip(keys, row or (0, 0, 0, 0, 0), strict=True))


def counts(system: System) -> dict[int, int]:
    with psycopg.connect(system.customers_db.conninfo()) as conn:
        rows = conn.execute("SELECT customer_id, orders_count FROM orders_count").fetchall()
    return {int(c): int(n) for c, n in rows if n}


def orders_per_customer(system: System) -> dict[int, int]:
    """The truth: what the order service stored."""
    with psycopg.connect(system.orders_db.conninfo()) as conn:
        rows = conn.execute(
            "SELECT customer_id, count(*) FROM order_summaries GROUP BY customer_id"
        ).fetchall()
    return {int(c): int(n) for c, n in rows}


async def cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """`ordersystem ARGS` against this system's read model (off the event loop)."""
    return await asyncio.to_thread(ordersystem, *args, env=system.projector_env())


async def caught_up(system: System, position: int, within: float = 60) -> None:
    await eventually(
        lambda: projection_row(system)["position"] >= position,
        within=within,
        what=f"the projection to reach {position}",
    )


async def declare_projector_queue(system: System) -> None:
    """The projector's own topology, as it declares it, before anything is published."""
    settings = ProjectorSettings(
        conninfo="",
        subscription=stream_subscription(AMQP_URL, system.exchange, system.projection_queue),
    )
    async with await aio_pika.connect(AMQP_URL) as connection:
        await declare_topology(await connection.channel(), settings)


async def test_kill_9_of_the_projector_mid_batch_then_restart_is_exact(
    system: System, orders: Orders
) -> None:
    await declare_projector_queue(system)
    positions = fill_orders(orders, 3000)
    env = {**system.projector_env(), "PROJECTION_BATCH_SIZE": "100"}
    relay = relay_process(system.orders.env).start()
    first = projector_process(env).start()
    try:
        await eventually(lambda: projection_row(system)["position"] >= 600, within=60)
        first.kill()
        killed_at = projection_row(system)["position"]
        second = projector_process(env).start()
        try:
            await caught_up(system, positions[-1])
        finally:
            second.stop()
    finally:
        relay.stop()

    assert killed_at < positions[-1], "the projector finished before it could be killed"
    assert counts(system) == orders_per_customer(system)
    assert projection_row(system)["applied"] == len(positions)
    assert (await cli(system, "verify", "orders-count")).returncode == 0


async def test_lost_and_poisoned_messages_are_healed_from_the_feed(
    system: System, orders: Orders
) -> None:
    env = {**system.projector_env(), "PROJECTION_CATCH_UP_INTERVAL": "3600"}  # messages only
    projector = projector_process(env).start()
    try:
        await eventually(lambda: queue_exists(system.projection_queue), within=20)
        fill_orders(orders, 20)
        published = event_log(orders).read(after=0, limit=100)
        for envelope in published:
            if envelope.position == 5:
                continue  # lost on the way
            body = encode(envelope) if envelope.position != 12 else b"\x00 mangled"
            headers: dict[str, int | str] = {"position": envelope.position, "schema_version": 1}
            await publish_raw(system.exchange, body, envelope.type, headers)

        await caught_up(system, published[-1].position, within=30)
    finally:
        projector.stop()

    row = projection_row(system)
    assert counts(system) == orders_per_customer(system)
    assert row["applied"] == 20
    assert row["healed"] >= 2  # 5 (lost) and 12 (poison) came from the feed
    assert row["poisoned"] == 1


async def test_a_lost_last_message_is_healed_by_the_idle_catch_up(
    system: System, orders: Orders
) -> None:
    env = {**system.projector_env(), "PROJECTION_CATCH_UP_INTERVAL": "0.5"}
    projector = projector_process(env).start()
    try:
        await eventually(lambda: queue_exists(system.projection_queue), within=20)
        fill_orders(orders, 3)  # published by nobody: as if every message were lost

        await caught_up(system, 3, within=15)
    finally:
        projector.stop()

    assert counts(system) == orders_per_customer(system)


async def test_a_rebuild_during_live_traffic_is_exact_and_verify_agrees(
    system: System, orders: Orders
) -> None:
    await declare_projector_queue(system)
    fill_orders(orders, 2000)
    workers: list[Worker] = [
        relay_process(system.orders.env).start(),
        projector_process(system.projector_env()).start(),
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
    assert counts(system) == orders_per_customer(system)
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
    projector = projector_process(system.projector_env()).start()
    try:
        await eventually(lambda: queue_exists(system.projection_queue), within=20)
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
    assert counts(system) == orders_per_customer(system)


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
        projector = projector_process(system.projector_env()).start()
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
