"""The order lifecycle: every transition allowed and refused, history, concurrency, upcasting."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.utils import get_topic

from order_service.application import Orders
from order_service.domain import (
    TRANSITIONS,
    InvalidTransitionError,
    Order,
    PaymentRequiredError,
    PaymentStatus,
    Status,
)
from order_service.tests.conftest import stored_order
from order_service.usecases import (
    ConcurrentModificationError,
    PlaceOrder,
    Recorded,
    VersionMismatchError,
)

COMMANDS = {
    Status.CONFIRMED: "confirm",
    Status.SHIPPED: "ship",
    Status.DELIVERED: "deliver",
    Status.CANCELLED: "cancel",
}
EVERY_MOVE = [(start, target) for start in Status for target in COMMANDS]


@pytest.fixture
def orders() -> Iterator[Orders]:
    app = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def order_in(status: Status, *, paid: bool = False) -> Order:
    order = stored_order(status)  # any status: the lifecycle holds for stored ones too
    if paid:
        order.record_payment(payment_id=uuid.uuid4(), succeeded=True)
    return order


def move(order: Order, target: Status) -> None:
    if target is Status.CANCELLED:
        order.cancel("changed my mind")
    else:
        getattr(order, COMMANDS[target])()


@pytest.mark.parametrize(("start", "target"), EVERY_MOVE, ids=lambda s: str(s))
def test_each_move_is_allowed_exactly_when_the_lifecycle_says_so(
    start: Status, target: Status
) -> None:
    order = order_in(start, paid=True)  # shipping also needs a payment: see the tests below

    if target in TRANSITIONS[start]:
        move(order, target)
        assert order.status is target
        assert order.version == 3
    else:
        with pytest.raises(InvalidTransitionError):
            move(order, target)
        assert (order.status, order.version) == (start, 2)  # refused: nothing recorded


def test_a_cancelled_order_keeps_its_reason() -> None:
    order = order_in(Status.CONFIRMED)

    order.cancel("out of stock")

    assert order.cancellation_reason == "out of stock"
    assert [type(e).__name__ for e in order.collect_events()] == ["Placed", "Cancelled"]


def place(orders: Orders) -> uuid.UUID:
    command = PlaceOrder(customer_id=1, product_name="Widget", quantity=2, price=Decimal("5"))
    return orders.place(command, correlation_id="req-0").order.id


def test_a_transition_is_saved_and_listed_at_once(orders: Orders) -> None:
    order_id = place(orders)

    recorded = orders.transition(order_id, "confirm", correlation_id="req-1")
    confirmed = recorded.order

    assert (confirmed.status, confirmed.version) == ("confirmed", 2)
    assert recorded.position == 2  # the log's second event: the placing was the first
    assert orders.get_order(order_id) == confirmed
    assert orders.list_orders(customer_id=1, limit=5).orders == [confirmed]


def test_an_if_match_on_a_stale_version_is_refused(orders: Orders) -> None:
    order_id = place(orders)
    orders.transition(order_id, "confirm")

    with pytest.raises(VersionMismatchError) as stale:
        orders.transition(order_id, "cancel", expected_version=1)

    assert stale.value.current == 2
    assert orders.transition(order_id, "cancel", expected_version=2).order.status == "cancelled"


def test_the_history_lists_every_event_with_the_status_after_it(orders: Orders) -> None:
    order_id = place(orders)
    orders.transition(order_id, "confirm", correlation_id="req-1")
    orders.transition(order_id, "cancel", reason="late", correlation_id="req-2")

    history = orders.history(order_id)

    assert [(e.version, e.type, e.status) for e in history] == [
        (1, "Placed", "pending"),
        (2, "Confirmed", "confirmed"),
        (3, "Cancelled", "cancelled"),
    ]
    assert [e.correlation_id for e in history] == ["req-0", "req-1", "req-2"]
    assert history[2].data == {"from_status": "confirmed", "reason": "late"}
    assert history[0].data["price"] == Decimal("5.00")


def test_the_order_at_a_moment_is_the_state_after_its_last_event_by_then(
    orders: Orders,
) -> None:
    order_id = place(orders)
    orders.transition(order_id, "confirm")
    placed, confirmed = orders.history(order_id)

    assert orders.order_at(order_id, placed.occurred_at).status == "pending"
    assert orders.order_at(order_id, confirmed.occurred_at).status == "confirmed"
    assert orders.order_at(order_id, confirmed.occurred_at + timedelta(days=1)).version == 2


class LosingRace(Orders):
    """An application whose saves of a transition always find the version taken."""

    def save_orders(self, *orders: Order) -> Recorded:
        if any(order.version > 1 for order in orders):
            raise IntegrityError("version taken")
        return super().save_orders(*orders)


def test_without_if_match_a_lost_race_is_retried_then_reported() -> None:
    orders = LosingRace(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    order_id = place(orders)

    with pytest.raises(ConcurrentModificationError):
        orders.transition(order_id, "confirm")
    with pytest.raises(VersionMismatchError):
        orders.transition(order_id, "confirm", expected_version=1)


def test_an_order_stored_before_currency_existed_is_read_with_the_default(
    orders: Orders,
) -> None:
    order_id = uuid.uuid4()
    version_1_state = {  # exactly what version 1 of Order.Placed stored: no currency field
        "originator_topic": get_topic(Order),
        "timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-02T03:04:05+00:00"},
        "customer_id": 4,
        "product_name": "Lamp",
        "quantity": 2,
        "price": {"_type_": "decimal_str", "_data_": "30.00"},
        "status": "pending",
        "correlation_id": "old",
    }
    orders.recorder.insert_events(
        [
            StoredEvent(
                originator_id=order_id,
                originator_version=1,
                topic=get_topic(Order.Placed),
                state=json.dumps(version_1_state).encode(),
            )
        ]
    )

    old = orders.get_order(order_id)

    assert (old.currency, old.product_name, old.total) == ("EUR", "Lamp", Decimal("60.00"))
    assert orders.transition(order_id, "confirm").order.status == "confirmed"  # it lives on


def test_only_a_paid_order_can_be_shipped() -> None:
    unpaid = order_in(Status.CONFIRMED)

    with pytest.raises(PaymentRequiredError):
        unpaid.ship()
    assert unpaid.version == 1


def test_the_first_payment_result_decides_and_a_later_one_never_flips_it() -> None:
    paid, failed = order_in(Status.PENDING), order_in(Status.PENDING)

    assert paid.record_payment(payment_id=uuid.uuid4(), succeeded=True)
    assert not paid.record_payment(payment_id=uuid.uuid4(), succeeded=False, reason="late")
    assert not paid.record_payment(payment_id=uuid.uuid4(), succeeded=True)
    assert failed.record_payment(payment_id=uuid.uuid4(), succeeded=False, reason="declined")
    assert not failed.record_payment(payment_id=uuid.uuid4(), succeeded=True)

    assert (paid.payment_status, paid.version) == (PaymentStatus.PAID, 2)
    assert failed.payment_status is PaymentStatus.FAILED


@pytest.mark.parametrize(
    ("start", "cancelled"),
    [
        (Status.PENDING, True),
        (Status.CONFIRMED, True),
        (Status.SHIPPED, False),
        (Status.DELIVERED, False),
        (Status.CANCELLED, False),
    ],
)
def test_a_failed_payment_cancels_the_order_unless_it_has_shipped(
    start: Status, cancelled: bool
) -> None:
    order = order_in(start)

    order.record_payment(payment_id=uuid.uuid4(), succeeded=False, reason="amount_over_limit")

    events = [type(e).__name__ for e in order.collect_events()]
    assert order.payment_status is PaymentStatus.FAILED
    assert (order.status is Status.CANCELLED) == (start is Status.CANCELLED or cancelled)
    assert events == ["Placed", "PaymentFailed", *(["Cancelled"] if cancelled else [])]
    if cancelled:
        assert order.cancellation_reason == "payment_failed"


def test_a_payment_for_an_order_cancelled_meanwhile_is_recorded_as_paid() -> None:
    order = order_in(Status.PENDING)
    order.cancel("changed my mind")

    order.record_payment(payment_id=uuid.uuid4(), succeeded=True)

    assert (order.status, order.payment_status) == (Status.CANCELLED, PaymentStatus.PAID)


def test_recording_a_payment_result_twice_through_the_application_saves_once(
    orders: Orders,
) -> None:
    order_id = place(orders)
    payment_id = uuid.uuid4()

    first = orders.record_payment(order_id, payment_id=payment_id, succeeded=True)
    again = orders.record_payment(order_id, payment_id=payment_id, succeeded=True)

    assert first == again
    assert (first.payment_status, first.version) == ("paid", 2)
    assert [e.type for e in orders.history(order_id)] == ["Placed", "Paid"]
