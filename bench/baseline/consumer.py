"""The baseline's batch consumer (benchmark fixture): prefetch, then each batch of whatever
has arrived handled in one database transaction and acknowledged after the commit with one
`multiple=True` ack. A message that cannot be read is rejected to the dead-letter queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import aio_pika
import msgspec
from aio_pika.abc import AbstractIncomingMessage
from psycopg import AsyncConnection

from bench.baseline.outbox import NOTIFY
from bench.baseline.settings import Settings
from bench.baseline.topology import declare_queue, queue_for

log = logging.getLogger(__name__)
T = TypeVar("T")
Apply = Callable[[AsyncConnection[Any], list[T]], Awaitable[None]]
WAIT = 0.5  # seconds an idle consumer waits before it looks at `stopping` again


class BatchConsumer(Generic[T]):
    def __init__(
        self, decode: Callable[[bytes], T], apply: Apply[T], batch: int, *, notify: bool = False
    ) -> None:
        self.decode = decode
        self.apply = apply
        self.batch = batch
        self.notify = notify  # wake the outbox publisher after each commit
        self.inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def receive(self, message: AbstractIncomingMessage) -> None:
        self.inbox.put_nowait(message)

    async def take(self) -> list[AbstractIncomingMessage]:
        """The first message to arrive and every other one already here, up to a batch."""
        try:
            first = await asyncio.wait_for(self.inbox.get(), WAIT)
        except TimeoutError:
            return []
        await asyncio.sleep(0)  # let the deliveries already read off the socket land
        taken = [first]
        while len(taken) < self.batch and not self.inbox.empty():
            taken.append(self.inbox.get_nowait())
        return taken

    async def handle(self, db: AsyncConnection[Any], taken: list[AbstractIncomingMessage]) -> None:
        readable: list[T] = []
        last_readable = None
        for message in taken:
            try:
                readable.append(self.decode(message.body))
                last_readable = message
            except msgspec.DecodeError as exc:
                log.warning("poison message %s dead-lettered: %s", message.message_id, exc)
                await message.reject(requeue=False)
        if readable:
            await self.apply(db, readable)  # one statement: its own transaction
            if self.notify:
                await db.execute(NOTIFY)
        if last_readable is not None:
            await last_readable.ack(multiple=True)


async def run_consumer(
    settings: Settings, role: str, consumer: BatchConsumer[Any], stopping: asyncio.Event
) -> None:
    """Consume the role's queue into its service's database until `stopping`."""
    spec = queue_for(settings, role)
    service = {"orders-count": "customers", "payments": "payments"}.get(role, "orders")
    async with await aio_pika.connect_robust(settings.amqp_url) as broker:
        channel = await broker.channel()
        await channel.set_qos(prefetch_count=settings.consumer_prefetch)
        queue = await declare_queue(channel, spec)
        await queue.consume(consumer.receive)
        conninfo = settings.conninfo(service, role)
        async with await AsyncConnection.connect(conninfo, autocommit=True) as db:
            while not stopping.is_set():
                taken = await consumer.take()
                if taken:
                    await consumer.handle(db, taken)
