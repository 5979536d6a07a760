"""The payment service's rule and its once-per-order guarantee, on in-memory persistence."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from contracts.events import PaymentFailedV1, PaymentSucceededV1
from payment_service.application import (
    PaymentNotFoundError,
    PaymentRequest,
    Payments,
    payment_id_for,
)
from payment_service.relay import event_log
from payment_service.translation import to_contract


@pytest.fixture
def payments() -> Iterator[Payments]:
    app = Payments(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


@pytest.mark.parametrize(
    ("amount", "status"),
    [("0", "succeeded"), ("999.99", "succeeded"), ("1000", "succeeded"), ("1000.01", "failed")],
)
def test_a_total_of_at_most_1000_succeeds(payments: Payments, amount: str, status: str) -> None:
    decided = payments.pay(order_id=uuid.uuid4(), amount=Decimal(amount), currency="EUR")

    assert decided.status == status
    assert decided.reason == (None if status == "succeeded" else "amount_over_limit")


def test_a_repeated_request_returns_the_first_decision_and_charges_once(
    payments: Payments,
) -> None:
    order_id = uuid.uuid4()

    first = payments.pay(order_id=order_id, amount=Decimal("10"), currency="EUR")
    again = payments.pay(order_id=order_id, amount=Decimal("10"), currency="EUR")

    assert again == first
    assert first.id == payment_id_for(order_id)
    assert len(list(payments.events.get(first.id))) == 2  # requested, succeeded


def test_a_payment_is_found_by_its_order(payments: Payments) -> None:
    order_id = uuid.uuid4()
    paid = payments.pay(order_id=order_id, amount=Decimal("5"), currency="EUR")

    assert payments.for_order(order_id) == paid
    assert payments.for_order(uuid.uuid4()) is None
    with pytest.raises(PaymentNotFoundError):
        payments.get(uuid.uuid4())


def test_only_outcomes_are_published_and_they_carry_order_and_amount(payments: Payments) -> None:
    ok, declined = uuid.uuid4(), uuid.uuid4()
    payments.pay(order_id=ok, amount=Decimal("12.50"), currency="EUR", correlation_id="c1")
    payments.pay(order_id=declined, amount=Decimal("2000"), currency="USD")

    published = event_log(payments).read(after=0, limit=10)

    assert [type(e.data) for e in published] == [PaymentSucceededV1, PaymentFailedV1]
    assert published[0].data == PaymentSucceededV1(
        payment_id=payment_id_for(ok), order_id=ok, amount=Decimal("12.50"), currency="EUR"
    )
    assert published[0].correlation_id == "c1"
    assert [e.position for e in published] == [2, 4]  # the requests stay internal
    assert [e.previous_position for e in published] == [None, 2]
    assert to_contract(object()) is None


async def test_a_batch_decides_each_order_once_whatever_repeats_it_holds(
    payments: Payments,
) -> None:
    decided_before, fresh = uuid.uuid4(), uuid.uuid4()
    first = payments.pay(order_id=decided_before, amount=Decimal("10"), currency="EUR")

    await payments.pay_all(
        [
            PaymentRequest(order_id=decided_before, amount=Decimal("10"), currency="EUR"),
            PaymentRequest(order_id=fresh, amount=Decimal("2000"), currency="EUR"),
            PaymentRequest(order_id=fresh, amount=Decimal("2000"), currency="EUR"),
        ]
    )

    assert payments.for_order(decided_before) == first
    again = payments.for_order(fresh)
    assert again is not None
    assert (again.status, again.reason) == ("failed", "amount_over_limit")
    assert len(list(payments.events.get(again.id))) == 2  # requested, failed: once
