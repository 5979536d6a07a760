"""Integration events on the `orders` exchange: versioned, frozen, changed only additively."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

import msgspec

ORDERS_EXCHANGE = "orders"
ORDER_EVENTS_BINDING = "order.#"  # a position-tracking consumer follows the whole stream
PAYMENTS_EXCHANGE = "payments"
PAYMENT_EVENTS_BINDING = "payment.#"


class IntegrationEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event's `data`; TYPE is also the routing key on EXCHANGE."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    EXCHANGE: ClassVar[str] = ORDERS_EXCHANGE


CENT = Decimal("0.01")


class OrderCreatedV1(IntegrationEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "order.created"
    VERSION: ClassVar[int] = 1

    order_id: UUID
    customer_id: int
    product_name: str
    quantity: int
    price: Decimal
    status: str
    currency: str = "EUR"  # added later: additive, with the default every older order had
    # Added later: what the order costs, price times quantity to the cent. A message
    # published before it existed has none; `amount_due` then works it out.
    total: Decimal | None = None

    def amount_due(self) -> Decimal:
        """What the order costs: its `total`, or price times quantity for an older message."""
        if self.total is not None:
            return self.total
        return (self.price * self.quantity).quantize(CENT)


class OrderStatusChanged(IntegrationEvent, frozen=True, kw_only=True):
    """The shape every lifecycle event shares."""

    order_id: UUID
    from_status: str
    status: str


class OrderConfirmedV1(OrderStatusChanged, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "order.confirmed"
    VERSION: ClassVar[int] = 1


class OrderShippedV1(OrderStatusChanged, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "order.shipped"
    VERSION: ClassVar[int] = 1


class OrderDeliveredV1(OrderStatusChanged, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "order.delivered"
    VERSION: ClassVar[int] = 1


class OrderCancelledV1(OrderStatusChanged, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "order.cancelled"
    VERSION: ClassVar[int] = 1

    reason: str


class PaymentOutcome(IntegrationEvent, frozen=True, kw_only=True):
    """What the payment service decided about an order's payment (exchange `payments`)."""

    EXCHANGE: ClassVar[str] = PAYMENTS_EXCHANGE

    payment_id: UUID
    order_id: UUID
    amount: Decimal
    currency: str


class PaymentSucceededV1(PaymentOutcome, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "payment.succeeded"
    VERSION: ClassVar[int] = 1


class PaymentFailedV1(PaymentOutcome, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "payment.failed"
    VERSION: ClassVar[int] = 1

    reason: str


DataT = TypeVar("DataT", bound=IntegrationEvent)


class Envelope(msgspec.Struct, Generic[DataT], frozen=True, kw_only=True, omit_defaults=True):
    """What every message body (and every item of the event feed) is."""

    id: UUID  # stable across re-publishes: also the AMQP message_id
    type: str
    schema_version: int
    position: int  # the notification id in the publishing service's event store
    previous_position: int | None  # the position published just before this one
    occurred_at: datetime
    correlation_id: str
    data: DataT
    # Added later: the W3C trace context of the span that caused the event, when it was
    # traced. Left out of the JSON when there is none (omit_defaults), so an untraced
    # envelope is the same bytes as before it existed.
    traceparent: str | None = None
    # Added with partitions (contracts.partitions): the partition of a partitioned log the
    # envelope was published or served in, as `<index>of<count>`; then `previous_position`
    # is the position published before this one in the same partition. Left out when the
    # log is not partitioned.
    partition: str | None = None


EVENT_TYPES: tuple[type[IntegrationEvent], ...] = (
    OrderCreatedV1,
    OrderConfirmedV1,
    OrderShippedV1,
    OrderDeliveredV1,
    OrderCancelledV1,
    PaymentSucceededV1,
    PaymentFailedV1,
)

# Every envelope the order service publishes.
OrderEventEnvelope = (
    Envelope[OrderCreatedV1]
    | Envelope[OrderConfirmedV1]
    | Envelope[OrderShippedV1]
    | Envelope[OrderDeliveredV1]
    | Envelope[OrderCancelledV1]
)
