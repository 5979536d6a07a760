"""The baseline's messages (benchmark fixture): an envelope and the three events it carries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar
from uuid import UUID

import msgspec

ORDER_CREATED = "order.created"
ORDER_CANCELLED = "order.cancelled"
PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_FAILED = "payment.failed"
PAYMENT_LIMIT = Decimal("1000")  # a total up to and including this is paid; above, declined
OVER_LIMIT = "amount_over_limit"

T = TypeVar("T")


class OrderCreated(msgspec.Struct, frozen=True, kw_only=True):
    order_id: UUID
    customer_id: int
    product_name: str
    quantity: int
    price: Decimal
    total: Decimal
    status: str


class PaymentOutcome(msgspec.Struct, frozen=True, kw_only=True):
    order_id: UUID
    amount: Decimal
    reason: str | None = None


class Envelope(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    id: UUID  # the event id: consumers deduplicate by it
    type: str  # the routing key
    occurred_at: datetime
    data: T


encode = msgspec.json.Encoder().encode
decode_order_created = msgspec.json.Decoder(Envelope[OrderCreated]).decode
decode_payment_outcome = msgspec.json.Decoder(Envelope[PaymentOutcome]).decode
