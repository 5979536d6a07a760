"""Integration events on the `orders` exchange: versioned, frozen, changed only additively."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

import msgspec

ORDERS_EXCHANGE = "orders"
ORDER_EVENTS_BINDING = "order.#"  # a position-tracking consumer follows the whole stream


class IntegrationEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event's `data`; TYPE is also the routing key."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]


class OrderCreatedV1(IntegrationEvent, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "order.created"
    VERSION: ClassVar[int] = 1

    order_id: UUID
    customer_id: int
    product_name: str
    quantity: int
    price: Decimal
    status: str


DataT = TypeVar("DataT", bound=IntegrationEvent)


class Envelope(msgspec.Struct, Generic[DataT], frozen=True, kw_only=True):
    """What every message body (and every item of the event feed) is."""

    id: UUID  # stable across re-publishes: also the AMQP message_id
    type: str
    schema_version: int
    position: int  # the notification id in the publishing service's event store
    previous_position: int | None  # the position published just before this one
    occurred_at: datetime
    correlation_id: str
    data: DataT


EVENT_TYPES: tuple[type[IntegrationEvent], ...] = (OrderCreatedV1,)

# Every envelope the order service publishes (a union as more order events join).
OrderEventEnvelope = Envelope[OrderCreatedV1]
