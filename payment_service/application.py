"""The Payments application: take a payment request once, and show payments."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from payment_service.domain import Payment
from servicekit.application import GroupCommitApplication
from servicekit.groupcommit import commit_splitting_async
from servicekit.recorder import OneTripRecorder
from servicekit.schema import event_store_migrations
from servicekit.tracing import stamp
from servicekit.transcoder import TRANSCODER_ENV

PAYMENT_NAMESPACE = UUID("b7a9c1d3-5e7f-4a1b-9c3d-5e7f9a1b3c5d")


class PaymentView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    order_id: UUID
    amount: Decimal
    currency: str
    status: str
    reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> PaymentView:
        return cls(
            id=payment.id,
            order_id=payment.order_id,
            amount=payment.amount,
            currency=payment.currency,
            status=str(payment.status),
            reason=payment.reason,
            created_at=payment.created_on,
            updated_at=payment.modified_on,
        )


class PaymentRequest(msgspec.Struct, frozen=True, kw_only=True):
    order_id: UUID
    amount: Decimal
    currency: str
    correlation_id: str = ""
    traceparent: str | None = None  # the span the request is handled in, when traced


class PaymentNotFoundError(Exception):
    pass


def payment_id_for(order_id: UUID) -> UUID:
    """A payment's id is its order's, in another namespace: one payment per order, ever."""
    return uuid.uuid5(PAYMENT_NAMESPACE, str(order_id))


def decided(request: PaymentRequest) -> Payment:
    """The order's payment, requested and decided (not stored yet)."""
    payment = Payment.request(
        payment_id=payment_id_for(request.order_id),
        order_id=request.order_id,
        amount=request.amount,
        currency=request.currency,
        correlation_id=request.correlation_id,
    )
    payment.decide(request.correlation_id)
    stamp(payment.pending_events, request.traceparent)  # what caused it (servicekit.tracing)
    return payment


class Payments(GroupCommitApplication[list[Any]]):
    name = "payments"
    env = {"APPLICATION_RECORDER_TOPIC": get_topic(OneTripRecorder), **TRANSCODER_ENV}

    def _save_payment(self, payment: Payment) -> None:
        self.save_unit(list(payment.collect_events()))  # collected once: a retry saves the same

    def commit_units(self, units: list[list[Any]]) -> None:
        self.save(*[event for unit in units for event in unit])

    async def commit_units_on_loop(self, units: list[list[Any]]) -> None:
        await self.on_loop.save([event for unit in units for event in unit])

    def pay(
        self, *, order_id: UUID, amount: Decimal, currency: str, correlation_id: str = ""
    ) -> PaymentView:
        """Decide the order's payment; a repeated request returns the first decision."""
        request = PaymentRequest(
            order_id=order_id, amount=amount, currency=currency, correlation_id=correlation_id
        )
        payment = decided(request)
        try:
            self._save_payment(payment)
        except IntegrityError:  # redelivered: this order was decided before, never charge twice
            return self.get(payment.id)
        return PaymentView.of(payment)

    async def pay_all(self, requests: list[PaymentRequest]) -> None:
        """Decide a batch of payments in one transaction, on the event loop. A request whose
        order was decided before (a redelivery, or a repeat within the batch) changes
        nothing."""
        units = [list(decided(request).collect_events()) for request in requests]
        await commit_splitting_async(self.commit_units_on_loop, units)  # a conflict: decided before

    def get(self, payment_id: UUID) -> PaymentView:
        try:
            payment: Any = self.repository.get(payment_id)
        except AggregateNotFoundError:
            raise PaymentNotFoundError(payment_id) from None
        return PaymentView.of(payment)

    def for_order(self, order_id: UUID) -> PaymentView | None:
        try:
            return self.get(payment_id_for(order_id))
        except PaymentNotFoundError:
            return None


# The payments database (servicekit.schema): the events and the relay's position. Each
# process runs it before it opens the database; `ordersystem migrate` too.
MIGRATIONS = event_store_migrations(Payments)
