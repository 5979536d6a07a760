"""The Payment aggregate: one per order, decided once, by a simple rule."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

LIMIT = Decimal("1000")  # a total up to and including this is paid; above it, declined
OVER_LIMIT = "amount_over_limit"


class PaymentStatus(StrEnum):
    REQUESTED = "requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Payment(Aggregate):
    """A payment for one order; its id is derived from the order's, so it exists at most once."""

    class Requested(Aggregate.Created):
        order_id: Any
        amount: Decimal
        currency: str
        correlation_id: str

    @classmethod
    def request(
        cls, *, payment_id: Any, order_id: Any, amount: Decimal, currency: str, correlation_id: str
    ) -> Payment:
        return cls._create(
            cls.Requested,
            id=payment_id,
            order_id=order_id,
            amount=amount,
            currency=currency,
            correlation_id=correlation_id,
        )

    @event(Requested)
    def __init__(
        self, *, order_id: Any, amount: Decimal, currency: str, correlation_id: str
    ) -> None:
        self.order_id = order_id
        self.amount = amount
        self.currency = currency
        self.status = PaymentStatus.REQUESTED
        self.reason: str | None = None

    def decide(self, correlation_id: str = "") -> None:
        """Charge or decline (simulated): at most LIMIT succeeds."""
        if self.status is not PaymentStatus.REQUESTED:
            return
        outcome = {"order_id": self.order_id, "amount": self.amount, "currency": self.currency}
        if self.amount <= LIMIT:
            self._succeeded(**outcome, correlation_id=correlation_id)
        else:
            self._failed(**outcome, reason=OVER_LIMIT, correlation_id=correlation_id)

    # The outcome events repeat the order, amount and currency: they are published as they are.

    @event("Succeeded")
    def _succeeded(
        self, order_id: Any, amount: Decimal, currency: str, correlation_id: str
    ) -> None:
        self.status = PaymentStatus.SUCCEEDED

    @event("Failed")
    def _failed(
        self, order_id: Any, amount: Decimal, currency: str, reason: str, correlation_id: str
    ) -> None:
        self.status = PaymentStatus.FAILED
        self.reason = reason
