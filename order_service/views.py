"""Read DTOs of the order service: what use cases return and what the API serialises."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

import msgspec

from order_service.domain import Order


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    customer_id: int
    product_name: str
    quantity: int
    price: Decimal
    currency: str
    total: Decimal
    status: str
    payment_status: str
    version: int
    created_at: datetime
    updated_at: datetime
    cancellation_reason: str | None = None

    @classmethod
    def of(cls, order: Order) -> OrderView:
        return cls(
            id=order.id,
            customer_id=order.customer_id,
            product_name=order.product_name,
            quantity=order.quantity,
            price=order.price,
            currency=order.currency,
            total=order.total,
            status=str(order.status),
            payment_status=str(order.payment_status),
            version=order.version,
            created_at=order.created_on,
            updated_at=order.modified_on,
            cancellation_reason=getattr(order, "cancellation_reason", None),
        )


class OrderPage(msgspec.Struct, frozen=True, kw_only=True):
    orders: list[OrderView]
    next_position: int | None  # where the next page starts, None on the last page
