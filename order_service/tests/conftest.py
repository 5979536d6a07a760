"""Shared by the order service's tests: orders as stored, and the API in process on a real
Postgres with a scripted customer service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from order_service.app import create_app
from order_service.domain import Order, Status
from order_service.settings import Settings
from servicekit.postgres import PostgresSettings
from tests.peers import ScriptedPeer
from tests.support import Databases

Client = AsyncTestClient[Litestar]
ORDER = {"customer_id": 1, "product_name": "Widget", "quantity": 1, "price": "5.00"}


@pytest.fixture(scope="module")
def database(databases: Databases) -> PostgresSettings:
    return databases.fresh("orders_api")


@pytest.fixture
def peer() -> Iterator[ScriptedPeer]:
    scripted = ScriptedPeer().start()
    yield scripted
    scripted.stop()


@pytest.fixture
async def client(peer: ScriptedPeer, database: PostgresSettings) -> AsyncIterator[Client]:
    settings = Settings(postgres=database, customer_service_url=peer.url, breaker_threshold=3)
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def stored_events(database: PostgresSettings) -> int:
    with psycopg.connect(database.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM orders_events").fetchone()
        assert row is not None
        return int(row[0])


def stored_order(status: Status, price: Decimal = Decimal("5.00")) -> Order:
    """An order whose one Placed event holds `status`, made past Order.place. A new order
    starts only pending or confirmed; orders stored before that rule may hold any status,
    and every rule must still hold for them."""
    return Order._create(
        Order.Placed,
        id=uuid.uuid4(),
        customer_id=1,
        product_name="Widget",
        quantity=1,
        price=price,
        status=status,
        currency="EUR",
        correlation_id="",
    )
