"""What each baseline consumer does with a batch (benchmark fixture): one SQL statement,
so one transaction, per batch; every handler is safe to run twice on the same messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from bench.baseline.wire import (
    OVER_LIMIT,
    PAYMENT_FAILED,
    PAYMENT_LIMIT,
    PAYMENT_SUCCEEDED,
    Envelope,
    OrderCreated,
    PaymentOutcome,
    encode,
)

# Count an order only when its event id is new to processed_events.
COUNT = """
WITH batch AS (
    SELECT * FROM unnest(%s::uuid[], %s::bigint[]) AS b(event_id, customer_id)),
fresh AS (
    INSERT INTO processed_events (consumer, event_id)
    SELECT 'orders-count', event_id FROM batch
    ON CONFLICT DO NOTHING RETURNING event_id),
counts AS (
    SELECT customer_id, count(*) AS n FROM batch JOIN fresh USING (event_id)
    GROUP BY customer_id)
UPDATE customers c SET orders_count = c.orders_count + counts.n
FROM counts WHERE c.id = counts.customer_id
"""


async def count_orders(db: AsyncConnection[Any], events: list[Envelope[OrderCreated]]) -> None:
    unique = {e.id: e.data.customer_id for e in events}  # a copy within the batch, once
    await db.execute(COUNT, (list(unique), list(unique.values())))


# A payment exists once per order (its primary key); only a new one gets an outbox row.
PAY = """
WITH batch AS (
    SELECT * FROM unnest(%s::uuid[], %s::numeric[], %s::text[], %s::text[], %s::uuid[],
                         %s::text[], %s::bytea[])
        AS b(order_id, amount, status, reason, event_id, routing_key, payload)),
fresh AS (
    INSERT INTO payments (order_id, amount, status, reason)
    SELECT order_id, amount, status, reason FROM batch
    ON CONFLICT (order_id) DO NOTHING RETURNING order_id)
INSERT INTO outbox (event_id, routing_key, payload)
SELECT b.event_id, b.routing_key, b.payload FROM batch b JOIN fresh USING (order_id)
"""


def _outcome(order: OrderCreated, now: datetime) -> tuple[Any, ...]:
    """Decide (simulated): a total up to and including the limit is paid; above, declined."""
    paid = order.total <= PAYMENT_LIMIT
    key, reason = (PAYMENT_SUCCEEDED, None) if paid else (PAYMENT_FAILED, OVER_LIMIT)
    event_id = uuid.uuid4()
    data = PaymentOutcome(order_id=order.order_id, amount=order.total, reason=reason)
    payload = encode(Envelope(id=event_id, type=key, occurred_at=now, data=data))
    status = "succeeded" if paid else "failed"
    return order.order_id, order.total, status, reason, event_id, key, payload


async def take_payments(db: AsyncConnection[Any], events: list[Envelope[OrderCreated]]) -> None:
    now = datetime.now(UTC)
    unique = {e.data.order_id: e.data for e in events}
    rows = [_outcome(order, now) for order in unique.values()]
    await db.execute(PAY, [list(column) for column in zip(*rows, strict=True)])


# The first outcome decides (payment_status is still pending); a failure cancels an order
# that has not shipped, and that cancellation goes out through the outbox like any change.
RECORD = """
WITH batch AS (
    SELECT * FROM unnest(%s::uuid[], %s::bool[]) AS b(order_id, paid)),
changed AS (
    UPDATE orders o SET
        payment_status = CASE WHEN b.paid THEN 'paid' ELSE 'failed' END,
        status = CASE WHEN NOT b.paid AND o.status IN ('pending', 'confirmed')
                      THEN 'cancelled' ELSE o.status END,
        version = o.version + 1,
        updated_at = now()
    FROM batch b JOIN orders prior ON prior.id = b.order_id
    WHERE o.id = b.order_id AND o.payment_status = 'pending'
    RETURNING o.id, o.status, prior.status AS from_status)
INSERT INTO outbox (event_id, routing_key, payload)
SELECT event_id, 'order.cancelled', convert_to(json_build_object(
        'id', event_id, 'type', 'order.cancelled', 'occurred_at', now(),
        'data', json_build_object('order_id', id, 'from_status', from_status,
                                  'status', 'cancelled', 'reason', 'payment_failed'))::text,
    'UTF8')
FROM (SELECT gen_random_uuid() AS event_id, * FROM changed
      WHERE status = 'cancelled' AND from_status <> 'cancelled') AS cancelled
"""


async def record_payments(db: AsyncConnection[Any], events: list[Envelope[PaymentOutcome]]) -> None:
    first: dict[uuid.UUID, bool] = {}
    for e in events:
        first.setdefault(e.data.order_id, e.type == PAYMENT_SUCCEEDED)
    await db.execute(RECORD, (list(first), list(first.values())))
