"""What the Orders use cases take, give back and refuse: commands, results and errors.

The application (order_service.application) carries them out; what calls it (the routes,
the payment-results consumer, the command line) builds and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from order_service.domain import DEFAULT_CURRENCY, Order, OrderError, Status
from order_service.views import OrderView
from servicekit.tracing import stamp


@dataclass(frozen=True, kw_only=True)
class PlaceOrder:
    customer_id: int
    product_name: str
    quantity: int
    price: Decimal
    status: Status = Status.PENDING
    currency: str = DEFAULT_CURRENCY


ACTIONS = ("confirm", "ship", "deliver", "cancel")  # the transitions a client may ask for


@dataclass(frozen=True, kw_only=True)
class PaymentResult:
    order_id: UUID
    payment_id: UUID
    succeeded: bool
    reason: str = ""
    correlation_id: str = ""
    traceparent: str | None = None  # the span the result is handled in, when traced

    def record_on(self, order: Order) -> bool:
        """Take this result on the order; False (nothing recorded) if it had one already.
        What it records carries the result's trace context (servicekit.tracing)."""
        recorded = order.record_payment(
            payment_id=self.payment_id,
            succeeded=self.succeeded,
            reason=self.reason,
            correlation_id=self.correlation_id,
        )
        stamp(order.pending_events, self.traceparent)
        return recorded


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event of an order's stream, as its history shows it (and the API returns it)."""

    version: int
    type: str
    occurred_at: datetime
    correlation_id: str
    data: dict[str, Any]
    status: str  # the order's status after this event


@dataclass(frozen=True)
class Recorded:
    """An order after a change, and the log position of the last event the change recorded
    (None when it recorded nothing): what a reader waits for to read its own write."""

    order: OrderView
    position: int | None


@dataclass(frozen=True)
class Placement(Recorded):
    created: bool  # False when an Idempotency-Key replay returned the existing order


class OrderNotFoundError(OrderError):
    pass


class IdempotencyKeyReusedError(OrderError):
    pass


class VersionMismatchError(OrderError):
    """The client's If-Match names a version the order is no longer at."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the order is at version {current}")
        self.current = current


class ConcurrentModificationError(OrderError):
    """Other changes kept winning the race for this order."""


# Fields every stored event has; the history shows the rest as the event's data.
