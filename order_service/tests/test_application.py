"""The Orders application's use cases, on in-memory persistence (no sockets)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from order_service.application import Orders
from order_service.usecases import (
    IdempotencyKeyReusedError,
    OrderNotFoundError,
    Placement,
    PlaceOrder,
)


@pytest.fixture
def orders() -> Iterator[Orders]:
    app = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def widget(customer_id: int = 1, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder(
        customer_id=customer_id, product_name="Widget", quantity=quantity, price=Decimal("2.50")
    )


def test_a_placed_order_can_be_read_back_from_its_events(orders: Orders) -> None:
    placed = orders.place(widget(quantity=4))

    read = orders.get_order(placed.order.id)

    assert placed.created
    assert read == placed.order
    assert (read.total, read.status, read.version) == (Decimal("10.00"), "pending", 1)


def test_an_unknown_order_is_not_found(orders: Orders) -> None:
    with pytest.raises(OrderNotFoundError):
        orders.get_order(uuid.uuid4())


def test_a_version_the_order_never_reached_is_not_found(orders: Orders) -> None:
    placed = orders.place(widget())

    with pytest.raises(OrderNotFoundError):
        orders.get_order(placed.order.id, version=2)


def test_the_same_idempotency_key_and_body_return_the_same_order(orders: Orders) -> None:
    first = orders.place(widget(), idempotency_key="k-1")
    again = orders.place(widget(), idempotency_key="k-1")

    assert (first.created, again.created) == (True, False)
    assert again.order.id == first.order.id
    assert len(orders.list_orders(customer_id=1, limit=10).orders) == 1


def test_an_idempotency_key_reused_with_another_body_is_refused(orders: Orders) -> None:
    orders.place(widget(), idempotency_key="k-2")

    with pytest.raises(IdempotencyKeyReusedError):
        orders.place(widget(quantity=2), idempotency_key="k-2")


def test_a_key_places_a_new_order_once_and_then_returns_it(orders: Orders) -> None:
    placed = orders.place(widget(), idempotency_key="k-3")
    fresh = orders.place(widget(), idempotency_key="never-used")

    replayed = Placement(placed.order, placed.position, created=False)  # where it was placed
    assert orders.place(widget(), idempotency_key="k-3") == replayed
    assert placed.position is not None
    assert fresh.created
    assert fresh.order.id != placed.order.id
