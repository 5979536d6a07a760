"""The order + payment flow, black-box: the boundary, duplicates, outages, late results."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from contracts.codec import encode
from contracts.events import PaymentFailedV1
from payment_service.application import Payments
from payment_service.relay import event_log
from tests.broker import drain, publish_raw, queue_depth, unfinished
from tests.e2e.conftest import System, wait_for_payment
from tests.support import eventually

pytestmark = pytest.mark.e2e
Client = httpx.AsyncClient


async def place(client: Client, system: System, price: str, quantity: int = 1) -> dict[str, Any]:
    body = {"customer_id": 2, "product_name": "Thing", "quantity": quantity, "price": price}
    response = await client.post(f"{system.orders.url}/api/v1/orders", json=body)
    assert response.status_code == 201
    order: dict[str, Any] = response.json()
    return order


async def history(client: Client, system: System, order_id: str) -> list[str]:
    events = (await client.get(f"{system.orders.url}/api/v1/orders/{order_id}/events")).json()
    return [e["type"] for e in events]


async def get_order(client: Client, system: System, order_id: str) -> dict[str, Any]:
    response = await client.get(f"{system.orders.url}/api/v1/orders/{order_id}")
    order: dict[str, Any] = response.json()
    return order


@pytest.fixture
def payments(system: System) -> Iterator[Payments]:
    app = Payments(env=system.payments_db.eventsourcing_env())
    yield app
    app.close()


@pytest.mark.parametrize(
    ("price", "quantity", "payment", "status"),
    [
        ("999.99", 1, "paid", "pending"),
        ("1000.01", 1, "failed", "cancelled"),
        ("1000", 1, "paid", "pending"),
        ("250.00", 4, "paid", "pending"),  # the total decides: exactly 1000
        ("333.34", 3, "failed", "cancelled"),  # 1000.02
    ],
)
async def test_a_total_up_to_1000_is_paid_and_above_it_fails_and_cancels(
    client: Client, system: System, price: str, quantity: int, payment: str, status: str
) -> None:
    order = await place(client, system, price, quantity)

    settled = await wait_for_payment(system, order["id"], payment)

    assert settled["status"] == status
    expected = ["Placed", "Paid"] if payment == "paid" else ["Placed", "PaymentFailed", "Cancelled"]
    assert await history(client, system, order["id"]) == expected
    if payment == "failed":
        assert settled["cancellation_reason"] == "payment_failed"


async def test_the_payment_service_shows_the_payment_by_order_and_by_id(
    client: Client, system: System
) -> None:
    order = await place(client, system, "12.50", 2)
    await wait_for_payment(system, order["id"])

    api = f"{system.payments.url}/api/v1/payments"
    by_order = (await client.get(f"{api}?order_id={order['id']}")).json()
    by_id = (await client.get(f"{api}/{by_order[0]['id']}")).json()

    assert by_order == [by_id]
    assert (by_id["amount"], by_id["status"], by_id["order_id"]) == (
        "25.00",
        "succeeded",
        order["id"],
    )
    assert (await client.get(f"{api}/{uuid.uuid4()}")).status_code == 404
    assert (await client.get(f"{api}?order_id=x")).status_code == 422


async def test_a_republished_or_contradicting_result_changes_nothing(
    client: Client, system: System, payments: Payments
) -> None:
    order = await place(client, system, "10.00")
    paid = await wait_for_payment(system, order["id"])
    published = [
        e
        for e in event_log(payments).read(after=0, limit=10_000)
        if str(getattr(e.data, "order_id", "")) == order["id"]
    ]
    contradiction = msgspec.structs.replace(
        published[0],
        type=PaymentFailedV1.TYPE,
        id=uuid.uuid4(),
        data=PaymentFailedV1(**msgspec.structs.asdict(published[0].data), reason="late"),
    )
    exchange = system.messaging_env()["PAYMENTS_EXCHANGE"]

    await publish_raw(exchange, encode(published[0]), published[0].type)  # again
    await publish_raw(exchange, encode(contradiction), contradiction.type)  # a late flip
    await handled(system.messaging_env()["PAYMENT_RESULTS_QUEUE"])

    after = await get_order(client, system, order["id"])
    assert (after["payment_status"], after["version"]) == ("paid", paid["version"])
    assert await history(client, system, order["id"]) == ["Placed", "Paid"]


async def test_a_redelivered_order_is_charged_once(
    client: Client, system: System, payments: Payments
) -> None:
    order = await place(client, system, "42.00")
    await wait_for_payment(system, order["id"])
    feed = (await client.get(f"{system.orders.url}/api/v1/events?limit=5000")).content
    created = [
        bytes(raw)
        for raw in msgspec.json.decode(feed, type=list[msgspec.Raw])
        if order["id"].encode() in bytes(raw) and b'"order.created"' in bytes(raw)
    ]

    for _ in range(3):
        await publish_raw(system.exchange, created[0], "order.created")
    await handled(system.messaging_env()["PAYMENT_QUEUE"])  # the payment processor has seen them

    payment = payments.for_order(uuid.UUID(order["id"]))
    assert payment is not None
    assert payment.amount == Decimal("42.00")
    assert len(list(payments.events.get(payment.id))) == 2  # requested and succeeded, once
    assert await history(client, system, order["id"]) == ["Placed", "Paid"]  # nothing new sent


async def handled(queue: str) -> None:
    """A barrier: every message published to the queue so far was handled, however many
    handlers its consumer runs at once (see tests.support.unfinished)."""

    async def none_unfinished() -> bool:
        return await unfinished(queue) == 0

    await eventually(none_unfinished, within=30, what=f"every message on {queue} handled")


@pytest.fixture
def payments_down(system: System) -> Iterator[None]:
    """The payment processor stopped for the test; always started again after it."""
    system.workers["payments"].stop()
    yield
    system.workers["payments"].start()


async def test_orders_wait_while_the_payment_service_is_down_and_are_paid_when_it_returns(
    client: Client, system: System, payments_down: None
) -> None:
    waiting = [await place(client, system, "5.00") for _ in range(3)]
    queue = system.messaging_env()["PAYMENT_QUEUE"]

    async def queued() -> bool:
        return await queue_depth(queue) >= 3

    await eventually(queued, what="the requests waiting in the queue")
    still = [await get_order(client, system, o["id"]) for o in waiting]

    system.workers["payments"].start()
    paid = [await wait_for_payment(system, o["id"]) for o in waiting]

    assert {o["payment_status"] for o in still} == {"pending"}
    assert {o["payment_status"] for o in paid} == {"paid"}


async def test_a_payment_for_an_order_cancelled_meanwhile_is_recorded_and_the_order_stays_cancelled(
    client: Client, system: System, payments_down: None
) -> None:
    order = await place(client, system, "30.00")
    cancelled = await client.post(f"{system.orders.url}/api/v1/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200

    system.workers["payments"].start()
    settled = await wait_for_payment(system, order["id"])

    assert (settled["status"], settled["payment_status"]) == ("cancelled", "paid")
    assert await history(client, system, order["id"]) == ["Placed", "Cancelled", "Paid"]


async def test_a_poison_payment_message_is_dead_lettered_and_later_results_still_count(
    client: Client, system: System
) -> None:
    results_queue = system.messaging_env()["PAYMENT_RESULTS_QUEUE"]
    garbage = [b"not a payment", b'{"type": "payment.succeeded", "schema_version": 7}']
    for body in garbage:
        await publish_raw(system.messaging_env()["PAYMENTS_EXCHANGE"], body, "payment.succeeded")

    order = await place(client, system, "7.00")

    assert (await wait_for_payment(system, order["id"]))["payment_status"] == "paid"
    dead = await drain(f"{results_queue}.dlq")
    assert sorted(m.body for m in dead) == sorted(garbage)


async def test_an_unpaid_order_cannot_be_shipped(
    client: Client, system: System, payments_down: None
) -> None:
    order = await place(client, system, "20.00")  # no processor: it stays unpaid
    confirm = await client.post(f"{system.orders.url}/api/v1/orders/{order['id']}/confirm")

    ship = await client.post(f"{system.orders.url}/api/v1/orders/{order['id']}/ship")

    assert confirm.status_code == 200
    assert ship.status_code == 409
    assert ship.json()["code"] == "payment_required"
    assert (await get_order(client, system, order["id"]))["status"] == "confirmed"
