"""The relay and the projector on a three-node RabbitMQ cluster, every node named in their
settings: the node they use is killed -9 under load, and they carry on from the others,
every order counted exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from order_service.application import Orders
from servicekit import brokers
from tests.e2e.conftest import System, start_system
from tests.rabbitcluster import RabbitCluster
from tests.support import (
    Databases,
    eventually,
    fill_orders,
    ordersystem,
    projector_process,
    relay_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    made = RabbitCluster()
    try:
        yield made.start()
    finally:
        made.stop()


@pytest.fixture
async def system(databases: Databases, cluster: RabbitCluster) -> AsyncIterator[System]:
    running = start_system(databases, env={"RABBITMQ_URL": cluster.url})
    try:
        yield running
    finally:
        running.stop()


async def declared_on(cluster: RabbitCluster, queue: str) -> bool:
    connection = await brokers.connect(cluster.url, timeout=3)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, passive=True)
        return True
    except Exception:  # not yet: the passive declare closes the channel
        return False
    finally:
        await connection.close()


async def test_relay_and_projector_carry_on_when_their_node_is_killed(
    system: System, cluster: RabbitCluster
) -> None:
    orders = Orders(env=system.orders_db.eventsourcing_env())
    workers = [relay_process(system.orders.env), projector_process(system.projector_env())]
    try:
        for worker in workers:
            worker.start()
        await eventually(
            lambda: declared_on(cluster, system.projection_queue), within=30, what="the queue"
        )
        fill_orders(orders, 500)
        await eventually(system.counted_exactly, within=60, what="500 counted")

        doomed = cluster.nodes[0]  # each process connects to the first listed node first
        held = json.loads(doomed.ctl("list_connections", "name", "--formatter", "json"))
        doomed.kill()
        fill_orders(orders, 500)  # published and applied through the other two nodes
        await eventually(system.counted_exactly, within=90, what="1,000 counted")
        running = cluster.running()
        verified = await asyncio.to_thread(
            ordersystem, "verify", "orders-count", env=system.projector_env()
        )
    finally:
        for worker in workers:
            worker.stop()
        orders.close()

    assert len(held) >= 2  # the relay's and the projector's were on the node killed
    assert running == {node.node for node in cluster.nodes[1:]}
    assert verified.returncode == 0, verified.stderr
