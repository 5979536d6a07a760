"""Translation at the edge: stored order events to contract events, or to nothing."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from contracts.events import (
    IntegrationEvent,
    OrderCancelledV1,
    OrderConfirmedV1,
    OrderCreatedV1,
    OrderDeliveredV1,
    OrderShippedV1,
    OrderStatusChanged,
)
from order_service.domain import Order, order_total

# Each lifecycle event of the aggregate and the contract event it becomes.
_TRANSITIONS: dict[type[Any], type[OrderStatusChanged]] = {
    Order.Confirmed: OrderConfirmedV1,  # type: ignore[attr-defined]
    Order.Shipped: OrderShippedV1,  # type: ignore[attr-defined]
    Order.Delivered: OrderDeliveredV1,  # type: ignore[attr-defined]
}

# Domain events that leave the service. Any other event stays internal (the relay skips it).
PUBLIC_EVENTS: tuple[type[Any], ...] = (
    Order.Placed,
    *_TRANSITIONS,
    Order.Cancelled,  # type: ignore[attr-defined]
)
PUBLIC_TOPICS: tuple[str, ...] = tuple(get_topic(cls) for cls in PUBLIC_EVENTS)


def to_contract(event: Any) -> IntegrationEvent | None:
    """The integration event a stored domain event becomes; None for internal events."""
    if isinstance(event, Order.Placed):
        return OrderCreatedV1(
            order_id=event.originator_id,
            customer_id=event.customer_id,
            product_name=event.product_name,
            quantity=event.quantity,
            price=event.price,
            status=str(event.status),
            currency=event.currency,
            total=order_total(event.price, event.quantity),
        )
    if isinstance(event, Order.Cancelled):  # type: ignore[attr-defined]
        return OrderCancelledV1(
            order_id=event.originator_id,
            from_status=str(event.from_status),
            status="cancelled",
            reason=event.reason,
        )
    contract = _TRANSITIONS.get(type(event))
    if contract is None:
        return None
    return contract(
        order_id=event.originator_id,
        from_status=str(event.from_status),
        status=type(event).__name__.lower(),
    )
