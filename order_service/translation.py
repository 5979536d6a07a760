"""Translation at the edge: stored order events to contract events, or to nothing."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from contracts.events import IntegrationEvent, OrderCreatedV1
from order_service.domain import Order

# Domain events that leave the service. Any other event stays internal (the relay skips it).
PUBLIC_EVENTS: tuple[type[Any], ...] = (Order.Placed,)
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
        )
    return None
