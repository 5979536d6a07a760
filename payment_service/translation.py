"""Translation at the edge: payment outcomes to contract events; requests stay internal."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from contracts.events import IntegrationEvent, PaymentFailedV1, PaymentSucceededV1
from payment_service.domain import Payment

PUBLIC_EVENTS: tuple[type[Any], ...] = (Payment.Succeeded, Payment.Failed)  # type: ignore[attr-defined]
PUBLIC_TOPICS: tuple[str, ...] = tuple(get_topic(cls) for cls in PUBLIC_EVENTS)


def to_contract(event: Any) -> IntegrationEvent | None:
    """The contract event a stored payment event becomes; None for internal ones."""
    if not isinstance(event, PUBLIC_EVENTS):
        return None
    outcome = {
        "payment_id": event.originator_id,
        "order_id": event.order_id,
        "amount": event.amount,
        "currency": event.currency,
    }
    if isinstance(event, Payment.Failed):  # type: ignore[attr-defined]
        return PaymentFailedV1(**outcome, reason=event.reason)
    return PaymentSucceededV1(**outcome)
