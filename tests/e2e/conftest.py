"""Both services as real processes on free ports, each with databases of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
import pytest

from servicekit.postgres import PostgresSettings
from tests.support import Databases, RelayProcess, ServiceProcess, Topology

pytestmark = pytest.mark.e2e


@dataclass
class System:
    customers: ServiceProcess
    orders: ServiceProcess
    orders_db: PostgresSettings
    topology: Topology | None = None
    relay: RelayProcess | None = None

    def stored_events(self) -> int:
        with psycopg.connect(self.orders_db.conninfo()) as conn:
            row = conn.execute("SELECT count(*) FROM orders_events").fetchone()
            assert row is not None
            return int(row[0])


def start_system(databases: Databases) -> System:
    customers_db, orders_db = databases.fresh("customers"), databases.fresh("orders")
    customers = ServiceProcess("customers", {"CUSTOMERS_DB": customers_db.dbname}).start()
    try:
        orders = ServiceProcess(
            "orders",
            {
                "ORDERS_DB": orders_db.dbname,
                "CUSTOMER_SERVICE_URL": customers.url,
                "CUSTOMER_BREAKER_RESET_AFTER": "1",
            },
        ).start()
    except BaseException:
        customers.stop()
        raise
    return System(customers, orders, orders_db)


@pytest.fixture(scope="session")
async def system(databases: Databases, rabbitmq_up: None) -> AsyncIterator[System]:
    running = start_system(databases)
    running.topology = await Topology.declare("e2e")
    running.relay = RelayProcess(
        {"ORDERS_DB": running.orders_db.dbname, "ORDERS_EXCHANGE": running.topology.exchange}
    ).start()
    yield running
    running.relay.stop()
    running.orders.stop()
    running.customers.stop()
    await running.topology.delete()
