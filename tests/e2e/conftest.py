"""The whole system as real processes on free ports, with databases, exchange and queues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

import psycopg
import pytest

from customer_service.projector import PROJECTIONS
from servicekit.postgres import PostgresSettings
from tests.support import (
    RUN_ID,
    Databases,
    ServiceProcess,
    Topology,
    Worker,
    eventually,
    projector_process,
    queue_exists,
    relay_process,
)

pytestmark = pytest.mark.e2e


@dataclass
class System:
    customers: ServiceProcess
    orders: ServiceProcess
    orders_db: PostgresSettings
    customers_db: PostgresSettings
    exchange: str
    queue_prefix: str  # each projector's queue is <prefix>.<projection>
    topology: Topology | None = None  # a test queue bound to the exchange, for inspection
    workers: dict[str, Worker] = field(default_factory=dict)

    def stored_events(self) -> int:
        with psycopg.connect(self.orders_db.conninfo()) as conn:
            row = conn.execute("SELECT count(*) FROM orders_events").fetchone()
            assert row is not None
            return int(row[0])

    @property
    def projection_queue(self) -> str:
        """The orders-count projector's queue."""
        return f"{self.queue_prefix}.orders-count"

    def projector_env(self) -> dict[str, str]:
        return {
            "CUSTOMERS_DB": self.customers_db.dbname,
            "ORDER_SERVICE_URL": self.orders.url,
            "ORDERS_EXCHANGE": self.exchange,
            "PROJECTION_QUEUE_PREFIX": self.queue_prefix,
        }

    async def delete_projection_queues(self) -> None:
        for projection in PROJECTIONS:
            await Topology(exchange="", queue=f"{self.queue_prefix}.{projection}").delete_queues()

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.orders.stop()
        self.customers.stop()


def start_system(databases: Databases, *, exchange: str = "", workers: bool = False) -> System:
    """Both APIs (and with `workers`, the relay and the projector) on free ports."""
    customers_db, orders_db = databases.fresh("customers"), databases.fresh("orders")
    exchange = exchange or f"t{RUN_ID}.{orders_db.dbname}.orders"
    customers = ServiceProcess("customers", {})
    orders = ServiceProcess("orders", {})
    system = System(customers, orders, orders_db, customers_db, exchange, f"{exchange}.read")
    customers.env = {**system.projector_env()}
    orders.env = {
        "ORDERS_DB": orders_db.dbname,
        "CUSTOMER_SERVICE_URL": customers.url,
        "CUSTOMER_BREAKER_RESET_AFTER": "1",
        "ORDERS_EXCHANGE": exchange,
    }
    try:
        customers.start()
        orders.start()
        if workers:
            system.workers["relay"] = relay_process(orders.env).start()
            for projection in PROJECTIONS:
                system.workers[projection] = projector_process(
                    system.projector_env(), projection
                ).start()
    except BaseException:
        system.stop()
        raise
    return system


@pytest.fixture(scope="session")
async def system(databases: Databases, rabbitmq_up: None) -> AsyncIterator[System]:
    topology = await Topology.declare("e2e")
    running = start_system(databases, exchange=topology.exchange, workers=True)
    running.topology = topology
    for projection in PROJECTIONS:  # messages published before a queue exists would be lost
        queue = f"{running.queue_prefix}.{projection}"
        await eventually(partial(queue_exists, queue), within=30, what=f"queue {queue}")
    yield running
    running.stop()
    await topology.delete()
    await running.delete_projection_queues()
