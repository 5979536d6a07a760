"""A consumer of integration events whose handler is idempotent by itself.

For handlers that need no position tracking because the state they change refuses a repeat
(a payment keyed by its order, an order that is already paid), so messages may be handled
concurrently (up to `concurrency` at once, which lets the application group-commit them).
Each message is decoded and handled, then acknowledged; a message that cannot be read, or
that the handler declares unprocessable, goes to the dead-letter queue; any other failure
leaves it unacknowledged and ends the session, so it is delivered again after the consumer
reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

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
from servicekit.postgres import PostgresSettings, create_application
from servicekit.signals import stop_on_signals

Handler = Callable[[Envelope[IntegrationEvent]], Awaitable[None]]
CONSUMER_THREADS = 64  # a consumer process's threads for handlers that call synchronous code


@dataclass(frozen=True, kw_only=True)
class ConsumerSettings:
    name: str
    amqp_url: str
    exchange: str
    queue: str
    bindings: tuple[str, ...]
    prefetch: int = 200
    concurrency: int = CONSUMER_THREADS


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
            slots = asyncio.Semaphore(settings.concurrency)
            failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
            running: set[asyncio.Task[None]] = set()
            try:
                while not stopping.is_set() and not failed.done():
                    message = await next_message(inbox, stopping, 1.0, channel)
                    if message is None:
                        continue
                    await slots.acquire()
                    task = asyncio.create_task(self._one(message, dead_letters, slots, failed))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if running:
                    await asyncio.wait(running)
            finally:
                for task in running:
                    task.cancel()
            if failed.done():
                raise failed.result()

    async def _one(
        self,
        message: AbstractIncomingMessage,
        dead_letters: aio_pika.abc.AbstractExchange,
        slots: asyncio.Semaphore,
        failed: asyncio.Future[BaseException],
    ) -> None:
        try:
            try:
                await self.handle(decode(message.body))
            except (ContractError, UnprocessableError) as exc:
                await dead_letter(dead_letters, message, f"{type(exc).__name__}: {exc}")
                self.poisoned += 1
            else:
                self.handled += 1
            await message.ack()
        except Exception as exc:  # left unacknowledged: redelivered after reconnecting
            if not failed.done():
                failed.set_result(exc)
        finally:
            slots.release()


async def run_consumer_process(
    make_app: Callable[[], Any],
    postgres: PostgresSettings,
    settings: ConsumerSettings,
    handler_for: Callable[[Any], Handler],
) -> None:
    """A consumer process: its handlers run concurrently in threads against an application
    that group-commits; until a signal."""
    stopping = stop_on_signals()
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(CONSUMER_THREADS))
    app = await asyncio.to_thread(create_application, make_app, postgres)
    try:
        await Consumer(settings, handler_for(app)).run(stopping)
    finally:
        app.close()
