"""The Orders application's use cases, on in-memory persistence (no sockets)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from order_service.application import (
    IdempotencyKeyReusedError,
    OrderNotFoundError,
    Orders,
    PlaceOrder,
)
from order_service.domain import Status


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
    with pytest.raises(IdempotencyKeyReusedError):
        orders.existing_placement("k-2", widget(quantity=2))


def test_existing_placement_finds_only_keys_that_were_used(orders: Orders) -> None:
    placed = orders.place(widget(), idempotency_key="k-3")

    assert orders.existing_placement("k-3", widget()) == placed.order
    assert orders.existing_placement("never-used", widget()) is None


def test_listing_is_newest_first_and_pages_with_a_position(orders: Orders) -> None:
    ids = [orders.place(widget(customer_id=7)).order.id for _ in range(5)]
    orders.place(widget(customer_id=8))

    first = orders.list_orders(customer_id=7, limit=2)
    second = orders.list_orders(customer_id=7, limit=2, before=first.next_position)
    last = orders.list_orders(customer_id=7, limit=2, before=second.next_position)

    pages = [[o.id for o in page.orders] for page in (first, second, last)]
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]
    assert last.next_position is None


def test_listing_without_a_customer_lists_every_order(orders: Orders) -> None:
    orders.place(widget(customer_id=1))
    orders.place(widget(customer_id=2))

    assert len(orders.list_orders(customer_id=None, limit=50).orders) == 2


def test_an_order_placed_in_another_status_is_listed_with_it(orders: Orders) -> None:
    command = PlaceOrder(
        customer_id=3,
        product_name="Gadget",
        quantity=1,
        price=Decimal("1"),
        status=Status.CONFIRMED,
    )
    orders.place(command)

    assert orders.list_orders(customer_id=3, limit=1).orders[0].status == "confirmed"
