"""`replay --from N --to M`: publish a range of the event log again, exactly as first published.

Consumers track positions, so what they already applied is dropped as a duplicate: a replay
re-feeds a consumer that lost messages (or a new one) without double counting. With the log
in partitions (ORDER_PARTITIONS), it publishes as the relay does: each message with its
partition, chained within it, so it reaches its partition's queue.
"""

from __future__ import annotations

import asyncio

import aio_pika

from contracts.events import Envelope, IntegrationEvent
from order_service.application import Orders
from order_service.relay import event_log
from order_service.settings import Settings
from servicekit import brokers
from servicekit.eventlog import EventLog
from servicekit.progress import Progress
from servicekit.relay import Publisher, publish_confirmed

PAGE = 500


def read(log: EventLog, partitions: int, after: int) -> list[Envelope[IntegrationEvent]]:
    if partitions == 1:
        return log.read(after=after, limit=PAGE)
    return log.read_partitioned(after=after, limit=PAGE, partitions=partitions)


async def replay(
    settings: Settings, start: int, end: int, queue: str | None, progress: Progress
) -> int:
    """Publish positions start..end (inclusive); to one queue if named. How many were sent."""
    orders = await asyncio.to_thread(Orders, env=settings.eventsourcing_env())
    log = event_log(orders)
    sent, after = 0, start - 1
    try:
        async with await brokers.connect(settings.amqp_url, timeout=5) as broker:
            channel = await broker.channel(publisher_confirms=True, on_return_raises=True)
            if not queue:
                await channel.declare_exchange(
                    settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
            target = await Publisher.on(channel, "" if queue else settings.exchange)
            while True:
                page = await asyncio.to_thread(read, log, settings.partitions, after)
                page = [e for e in page if e.position <= end]
                if not page:
                    return sent
                await publish_confirmed(target, page, routing_key=queue)
                sent += len(page)
                after = page[-1].position
                progress.advance(len(page), after - start + 1, end - start + 1)
    finally:
        orders.close()
