"""The baseline (a benchmark fixture) does the job it stands in for: every order counted
once and paid or declined, and a message delivered twice counted once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import httpx
import psycopg
import pytest

from bench.baseline.stack import BaselineStack, start_stack
from bench.baseline.wire import ORDER_CREATED, Envelope, OrderCreated, encode
from tests.broker import AMQP_URL
from tests.support import RUN_ID, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def baseline(postgres_up: None, rabbitmq_up: None) -> Iterator[BaselineStack]:
    stack = start_stack(f"t{RUN_ID}.baseline")
    yield stack
    stack.remove()


@pytest.fixture
async def http(baseline: BaselineStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def orders_count(http: httpx.AsyncClient, stack: BaselineStack, customer_id: int) -> int:
    response = await http.get(f"{stack.customers.url}/api/v1/customers/{customer_id}")
    assert response.status_code == 200
    count: int = response.json()["orders_count"]
    return count


async def place(http: httpx.AsyncClient, stack: BaselineStack, **order: Any) -> dict[str, Any]:
    response = await http.post(f"{stack.orders.url}/api/v1/orders", json=order)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def times_counted(stack: BaselineStack, event_ids: list[str]) -> int:
    with psycopg.connect(stack.conninfo("customers")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM processed_events"
            " WHERE consumer = 'orders-count' AND event_id = ANY(%s::uuid[])",
            (event_ids,),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_each_order_is_counted_once_and_gets_its_payment_outcome(
    baseline: BaselineStack, http: httpx.AsyncClient
) -> None:
    # Two customers' counts before, then three orders: one above the payment limit.
    before = {c: await orders_count(http, baseline, c) for c in (2, 3)}
    small = await place(http, baseline, customer_id=2, product_name="pen", quantity=1, price=9.99)
    large = await place(
        http, baseline, customer_id=3, product_name="desk", quantity=2, price="600.00"
    )
    limit = await place(http, baseline, customer_id=2, product_name="lamp", quantity=1, price=1000)
    assert small["customer"]["id"] == 2
    assert set(small["customer"]) == {"id", "customer_name", "address", "orders_count"}

    # Each order gets its outcome: at most 1000 is paid; above fails and cancels the order.
    async def outcome(order: dict[str, Any]) -> dict[str, Any]:
        response = await http.get(f"{baseline.orders.url}/api/v1/orders/{order['id']}")
        body: dict[str, Any] = response.json()
        return body

    async def settled() -> bool:
        return all(
            [(await outcome(o))["payment_status"] != "pending" for o in (small, large, limit)]
        )

    await eventually(settled, within=15, what="every payment recorded")
    assert (await outcome(small))["payment_status"] == "paid"
    assert (await outcome(limit))["payment_status"] == "paid"
    assert {k: (await outcome(large))[k] for k in ("payment_status", "status")} == {
        "payment_status": "failed",
        "status": "cancelled",
    }

    # And each order is counted exactly once.
    async def counted() -> bool:
        return await orders_count(http, baseline, 2) == before[2] + 2

    await eventually(counted, within=15, what="customer 2 counted twice")
    assert await orders_count(http, baseline, 3) == before[3] + 1
    assert times_counted(baseline, [small["id"], large["id"], limit["id"]]) == 3


def order_created(event_id: uuid.UUID, customer_id: int) -> bytes:
    data = OrderCreated(
        order_id=event_id,
        customer_id=customer_id,
        product_name="copy",
        quantity=1,
        price=Decimal("1.00"),
        total=Decimal("1.00"),
        status="pending",
    )
    at = datetime.now(UTC)
    return encode(Envelope(id=event_id, type=ORDER_CREATED, occurred_at=at, data=data))


async def test_a_duplicate_delivery_is_counted_once(
    baseline: BaselineStack, http: httpx.AsyncClient
) -> None:
    before = await orders_count(http, baseline, 4)
    twice, after = uuid.uuid4(), uuid.uuid4()

    # The same event twice, then another one behind it on the same queue.
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(baseline.settings.orders_exchange)
        for event_id in (twice, twice, after):
            message = aio_pika.Message(order_created(event_id, 4), message_id=str(event_id))
            await exchange.publish(message, ORDER_CREATED)

    # Once the one behind is counted, both copies have been handled: the pair counts once.
    await eventually(lambda: times_counted(baseline, [str(after)]) == 1, within=15)
    assert await orders_count(http, baseline, 4) == before + 2
