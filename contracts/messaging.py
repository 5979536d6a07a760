"""How messages travel: the queue every consumer declares, and where poison goes.

Every consumer owns a durable quorum queue bound to the stream it follows, with a
dead-letter exchange `<queue>.dlx` and queue `<queue>.dlq`. A message that cannot be read is
copied there with the reason in the `x-poison-reason` header, then acknowledged, so it never
blocks the messages behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

POISON_REASON_HEADER = "x-poison-reason"
log = logging.getLogger(__name__)


async def declare_consumer_queue(
    channel: AbstractChannel, exchange: str, queue: str, bindings: Sequence[str]
) -> tuple[AbstractQueue, AbstractExchange]:
    """The consumer's queue bound to `exchange` by `bindings`, and its dead-letter exchange."""
    dead_letters = await channel.declare_exchange(
        f"{queue}.dlx", aio_pika.ExchangeType.FANOUT, durable=True
    )
    dlq = await channel.declare_queue(
        f"{queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dead_letters)
    stream = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    declared = await channel.declare_queue(
        queue,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": dead_letters.name},
    )
    for binding in bindings:
        await declared.bind(stream, binding)
    return declared, dead_letters


async def dead_letter(
    dead_letters: AbstractExchange, message: AbstractIncomingMessage, reason: str
) -> None:
    """Copy a message that cannot be read to the dead-letter queue, with why (logged once)."""
    log.warning(
        "poison message %s (%s) dead-lettered: %s", message.message_id, message.routing_key, reason
    )
    headers = dict(message.headers or {})
    headers.update(
        {POISON_REASON_HEADER: reason[:500], "x-original-routing-key": message.routing_key}
    )
    await dead_letters.publish(
        aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            message_id=message.message_id,
            type=message.type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=message.routing_key or "",
    )
