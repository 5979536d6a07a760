"""A consumer of integration events whose handler is idempotent by itself.

For handlers that need no position tracking because the state they change refuses a repeat
(a payment keyed by its order, an order that is already paid). Each message is decoded and
handled, then acknowledged; a message that cannot be read, or that the handler declares
unprocessable, goes to the dead-letter queue; any other failure leaves it unacknowledged,
so it is delivered again after the consumer reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from contracts.codec import ContractError, decode
from contracts.events import Envelope, IntegrationEvent
from contracts.messaging import (
    UnprocessableError,
    dead_letter,
    declare_consumer_queue,
    into,
    keep_running,
    next_message,
)

Handler = Callable[[Envelope[IntegrationEvent]], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ConsumerSettings:
    name: str
    amqp_url: str
    exchange: str
    queue: str
    bindings: tuple[str, ...]
    prefetch: int = 50


class Consumer:
    def __init__(self, settings: ConsumerSettings, handle: Handler) -> None:
        self.settings = settings
        self.handle = handle
        self.handled = 0
        self.poisoned = 0
        self.failures = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set; reconnect with backoff after any failure."""
        await keep_running(
            self.settings.name, lambda: self._consume(stopping), stopping, on_failure=self._failed
        )

    def _failed(self, _: Exception) -> None:
        self.failures += 1

    async def _consume(self, stopping: asyncio.Event) -> None:
        settings = self.settings
        async with await aio_pika.connect(settings.amqp_url, timeout=5) as broker:
            channel = await broker.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=settings.prefetch)
            queue, dead_letters = await declare_consumer_queue(
                channel, settings.exchange, settings.queue, settings.bindings
            )
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            await queue.consume(into(inbox))
            while not stopping.is_set():
                message = await next_message(inbox, stopping, wait=1.0)
                if message is None:
                    continue
                try:
                    await self.handle(decode(message.body))
                except (ContractError, UnprocessableError) as exc:
                    await dead_letter(dead_letters, message, f"{type(exc).__name__}: {exc}")
                    self.poisoned += 1
                else:
                    self.handled += 1
                await message.ack()
