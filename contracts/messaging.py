"""How messages travel: the queue every consumer declares, and where poison goes.

Every consumer owns a durable quorum queue bound to the stream it follows, with a
dead-letter exchange `<queue>.dlx` and queue `<queue>.dlq`. A message that cannot be read is
copied there with the reason in the `x-poison-reason` header, then acknowledged, so it never
blocks the messages behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

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


class UnprocessableError(Exception):
    """A message that is well-formed but can never be handled: dead-letter it, do not retry."""


async def keep_running(
    name: str,
    attempt: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    on_failure: Callable[[Exception], None] | None = None,
    max_backoff: float = 5.0,
) -> None:
    """Run `attempt` until `stopping`; after a failure (broker or database gone), back off
    (0.5 s doubling to `max_backoff`, reset after a good half minute) and run it again."""
    backoff = 0.5
    while not stopping.is_set():
        started = time.monotonic()
        try:
            await attempt()
        except Exception as exc:
            if on_failure is not None:
                on_failure(exc)
            log.warning("%s: %s: %s", name, type(exc).__name__, exc)
        if time.monotonic() - started > 30:
            backoff = 0.5
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), backoff)
        backoff = min(backoff * 2, max_backoff)


async def next_message(
    inbox: asyncio.Queue[AbstractIncomingMessage],
    stopping: asyncio.Event,
    wait: float,
    channel: AbstractChannel,
) -> AbstractIncomingMessage | None:
    """The next consumed message, or None after `wait` seconds or once `stopping` is set.

    A closed channel (the broker went away) raises: nothing would ever arrive in the inbox
    again, so the consumer must reconnect rather than wait.
    """
    if channel.is_closed:
        raise ConnectionError("the channel to the broker is closed")
    arrived = asyncio.ensure_future(inbox.get())
    stopped = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({arrived, stopped}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if arrived.done():
        return arrived.result()
    arrived.cancel()
    if channel.is_closed:
        raise ConnectionError("the channel to the broker is closed")
    return None


def into(inbox: asyncio.Queue[AbstractIncomingMessage]) -> Callable[..., Awaitable[None]]:
    """A consume callback that hands each message to `inbox`."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        inbox.put_nowait(message)

    return on_message
