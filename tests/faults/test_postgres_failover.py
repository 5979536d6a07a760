"""The order API on a primary and a synchronous standby, both named in its settings: when
the primary dies it fails fast, and once the standby is promoted it writes there by itself,
with every order it acknowledged before still there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.orders import WIDGET
from tests.pgpair import PostgresPair
from tests.support import Databases, ServiceProcess, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def pair() -> Iterator[PostgresPair]:
    started = PostgresPair()
    try:
        yield started.start()
    finally:
        started.stop()


async def place(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/api/v1/orders", json=WIDGET)


async def test_the_order_api_fails_over_to_the_promoted_standby(
    pair: PostgresPair, databases: Databases
) -> None:
    customers_db = databases.fresh("failover_customers")
    customers = ServiceProcess("customers", {"CUSTOMERS_DB": customers_db.dbname}).start()
    orders = ServiceProcess(
        "orders", {**pair.hosts, "ORDERS_DB": "orders", "CUSTOMER_SERVICE_URL": customers.url}
    )
    try:
        orders.start()
        async with httpx.AsyncClient(base_url=orders.url, timeout=15) as client:
            before = [await place(client) for _ in range(20)]
            assert {r.status_code for r in before} == {201}

            pair.kill_primary()
            started = time.monotonic()
            refused = await place(client)
            refused_after = time.monotonic() - started

            pair.promote()

            async def written() -> bool:
                return (await place(client)).status_code == 201

            await eventually(written, within=30, what="an order stored on the new primary")
            after = [await place(client) for _ in range(5)]
            stored = await asyncio.gather(
                *(client.get(f"/api/v1/orders/{r.json()['id']}") for r in before + after)
            )
    finally:
        orders.stop()
        customers.stop()

    assert refused.status_code == 503, refused.text  # no primary: fail fast, never a hang
    assert refused_after < 10
    assert {r.status_code for r in after} == {201}
    assert [r.status_code for r in stored] == [200] * 25  # every acknowledged order kept
