"""The order + payment flow, black-box: the boundary, duplicates, outages, late results."""

from __future__ import annotations

import asyncio
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
from tests.e2e.conftest import System, wait_for_payment
from tests.support import drain, eventually, publish_raw, queue_depth

pytestmark = pytest.mark.e2e


def place(system: System, price: str, quantity: int = 1) -> dict[str, Any]:
    body = {"customer_id": 2, "product_name": "Thing", "quantity": quantity, "price": price}
    response = httpx.post(f"{system.orders.url}/api/v1/orders", json=body)
    assert response.status_code == 201
    order: dict[str, Any] = response.json()
    return order


def history(system: System, order_id: str) -> list[str]:
    events = httpx.get(f"{system.orders.url}/api/v1/orders/{order_id}/events").json()
    return [e["type"] for e in events]


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
def test_a_total_up_to_1000_is_paid_and_above_it_fails_and_cancels(
    system: System, price: str, quantity: int, payment: str, status: str
) -> None:
    order = place(system, price, quantity)

    settled = wait_for_payment(system, order["id"], payment)

    assert settled["status"] == status
    expected = ["Placed", "Paid"] if payment == "paid" else ["Placed", "PaymentFailed", "Cancelled"]
    assert history(system, order["id"]) == expected
    if payment == "failed":
        assert settled["cancellation_reason"] == "payment_failed"


def test_the_payment_service_shows_the_payment_by_order_and_by_id(system: System) -> None:
    order = place(system, "12.50", 2)
    wait_for_payment(system, order["id"])

    by_order = httpx.get(f"{system.payments.url}/api/v1/payments?order_id={order['id']}").json()
    by_id = httpx.get(f"{system.payments.url}/api/v1/payments/{by_order[0]['id']}").json()

    assert by_order == [by_id]
    assert (by_id["amount"], by_id["status"], by_id["order_id"]) == (
        "25.00",
        "succeeded",
        order["id"],
    )
    assert httpx.get(f"{system.payments.url}/api/v1/payments/{uuid.uuid4()}").status_code == 404
    assert httpx.get(f"{system.payments.url}/api/v1/payments?order_id=x").status_code == 422


def test_a_republished_or_contradicting_result_changes_nothing(
    system: System, payments: Payments
) -> None:
    order = place(system, "10.00")
    paid = wait_for_payment(system, order["id"])
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

    asyncio.run(publish_raw(exchange, encode(published[0]), published[0].type))  # again
    asyncio.run(publish_raw(exchange, encode(contradiction), contradiction.type))  # a late flip
    processed_after_them(system)

    after = get_order(system, order["id"])
    assert (after["payment_status"], after["version"]) == ("paid", paid["version"])
    assert history(system, order["id"]) == ["Placed", "Paid"]


def test_a_redelivered_order_is_charged_once(system: System, payments: Payments) -> None:
    order = place(system, "42.00")
    wait_for_payment(system, order["id"])
    feed = httpx.get(f"{system.orders.url}/api/v1/events?limit=5000").content
    created = [
        bytes(raw)
        for raw in msgspec.json.decode(feed, type=list[msgspec.Raw])
        if order["id"].encode() in bytes(raw) and b'"order.created"' in bytes(raw)
    ]

    for _ in range(3):
        asyncio.run(publish_raw(system.exchange, created[0], "order.created"))
    processed_after_them(system)

    payment = payments.for_order(uuid.UUID(order["id"]))
    assert payment is not None
    assert payment.amount == Decimal("42.00")
    assert len(list(payments.events.get(payment.id))) == 2  # requested and succeeded, once
    assert history(system, order["id"]) == ["Placed", "Paid"]


def processed_after_them(system: System) -> None:
    """A barrier: a new order's request and result take the same queues, in order, to the
    same one-at-a-time consumers; once it is paid, everything published before it was handled."""
    marker = place(system, "1.00")
    wait_for_payment(system, marker["id"])


def get_order(system: System, order_id: str) -> dict[str, Any]:
    order: dict[str, Any] = httpx.get(f"{system.orders.url}/api/v1/orders/{order_id}").json()
    return order


@pytest.fixture
def payments_down(system: System) -> Iterator[None]:
    """The payment processor stopped for the test; always started again after it."""
    system.workers["payments"].stop()
    yield
    system.workers["payments"].start()


def test_orders_wait_while_the_payment_service_is_down_and_are_paid_when_it_returns(
    system: System, payments_down: None
) -> None:
    waiting = [place(system, "5.00") for _ in range(3)]
    queue = system.messaging_env()["PAYMENT_QUEUE"]

    async def queued() -> bool:
        return await queue_depth(queue) >= 3

    asyncio.run(eventually(queued, what="the requests waiting in the queue"))
    still = [get_order(system, o["id"]) for o in waiting]

    system.workers["payments"].start()
    paid = [wait_for_payment(system, o["id"]) for o in waiting]

    assert {o["payment_status"] for o in still} == {"pending"}
    assert {o["payment_status"] for o in paid} == {"paid"}


def test_a_payment_for_an_order_cancelled_meanwhile_is_recorded_and_the_order_stays_cancelled(
    system: System, payments_down: None
) -> None:
    order = place(system, "30.00")
    cancelled = httpx.post(f"{system.orders.url}/api/v1/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200

    system.workers["payments"].start()
    settled = wait_for_payment(system, order["id"])

    assert (settled["status"], settled["payment_status"]) == ("cancelled", "paid")
    assert history(system, order["id"]) == ["Placed", "Cancelled", "Paid"]


async def test_a_poison_payment_message_is_dead_lettered_and_later_results_still_count(
    system: System,
) -> None:
    results_queue = system.messaging_env()["PAYMENT_RESULTS_QUEUE"]
    garbage = [b"not a payment", b'{"type": "payment.succeeded", "schema_version": 7}']
    for body in garbage:
        await publish_raw(system.messaging_env()["PAYMENTS_EXCHANGE"], body, "payment.succeeded")

    order = place(system, "7.00")

    assert wait_for_payment(system, order["id"])["payment_status"] == "paid"
    dead = await drain(f"{results_queue}.dlq")
    assert sorted(m.body for m in dead) == sorted(garbage)


def test_an_unpaid_order_cannot_be_shipped(system: System, payments_down: None) -> None:
    order = place(system, "20.00")  # no processor: it stays unpaid
    confirm = httpx.post(f"{system.orders.url}/api/v1/orders/{order['id']}/confirm")

    ship = httpx.post(f"{system.orders.url}/api/v1/orders/{order['id']}/ship")

    assert confirm.status_code == 200
    assert ship.status_code == 409
    assert ship.json()["code"] == "payment_required"
    assert get_order(system, order["id"])["status"] == "confirmed"
