"""The Order aggregate's rules and events, with no infrastructure at all."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from order_service.application import Orders
from order_service.domain import InvalidOrderError, Order, Status, rule_violations
from order_service.tests.conftest import stored_order


def place(**overrides: object) -> Order:
    values: dict[str, object] = {
        "order_id": uuid.uuid4(),
        "customer_id": 1,
        "product_name": "Widget",
        "quantity": 3,
        "price": Decimal("19.99"),
    }
    values.update(overrides)
    return Order.place(**values)  # type: ignore[arg-type]


def test_a_placed_order_records_one_placed_event_and_starts_pending() -> None:
    order = place()

    events = order.collect_events()

    assert [type(e).__name__ for e in events] == ["Placed"]
    assert order.version == 1
    assert order.status is Status.PENDING
    assert order.total == Decimal("59.97")


def test_the_order_id_is_the_one_given() -> None:
    order_id = uuid.uuid4()

    assert place(order_id=order_id).id == order_id


def test_a_price_is_kept_exact_to_the_cent() -> None:
    order = place(price=Decimal("0.1"), quantity=3)

    assert order.price == Decimal("0.10")
    assert order.total == Decimal("0.30")


def test_an_order_may_be_placed_pending_or_confirmed() -> None:
    assert place(status=Status.CONFIRMED).status is Status.CONFIRMED
    assert place(status=Status.PENDING).status is Status.PENDING


@pytest.mark.parametrize("status", [Status.SHIPPED, Status.DELIVERED, Status.CANCELLED])
def test_an_order_cannot_be_placed_shipped_delivered_or_cancelled(status: Status) -> None:
    # Only a paid order ships, and a new order has not been paid.
    with pytest.raises(InvalidOrderError) as refused:
        place(status=status)

    assert refused.value.fields == ["status"]


def test_an_order_stored_placed_delivered_before_the_rule_still_replays() -> None:
    # Such orders were stored before the rule existed: replay runs event bodies, never rules.
    stored = stored_order(Status.DELIVERED, Decimal("5000.00"))
    orders = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    orders.save_orders(stored)

    read = orders.get_order(stored.id)

    assert (read.status, read.version) == ("delivered", 1)
    assert [entry.status for entry in orders.history(stored.id)] == ["delivered"]


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("quantity", {"quantity": 0}),
        ("quantity", {"quantity": 1_000_001}),
        ("price", {"price": Decimal("-0.01")}),
        ("price", {"price": Decimal("1.001")}),
        ("price", {"price": Decimal("NaN")}),
        ("product_name", {"product_name": "   "}),
        ("product_name", {"product_name": "x" * 201}),
    ],
)
def test_an_order_that_breaks_a_rule_is_refused(field: str, overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidOrderError) as refused:
        place(**overrides)

    assert [f for f, _ in refused.value.broken] == [field]


def test_rule_violations_reports_every_broken_rule_at_once() -> None:
    broken = rule_violations(product_name="", quantity=0, price=Decimal("-1"))

    assert sorted(field for field, _ in broken) == ["price", "product_name", "quantity"]


def test_same_request_compares_values_not_spelling() -> None:
    order = place(price=Decimal("2.5"))

    assert order.same_request(
        customer_id=1,
        product_name="Widget",
        quantity=3,
        price=Decimal("2.50"),
        status=Status.PENDING,
    )
    assert not order.same_request(
        customer_id=2,
        product_name="Widget",
        quantity=3,
        price=Decimal("2.50"),
        status=Status.PENDING,
    )
