"""The baseline's outbox publisher (benchmark fixture): claims a batch of outbox rows with
FOR UPDATE SKIP LOCKED, publishes them all with publisher confirms (pipelined), and deletes
them in the same transaction; woken by a writer's NOTIFY (listen) or by polling (poll)."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel
from psycopg import AsyncConnection

from bench.baseline.settings import Settings
from bench.baseline.topology import declare_exchange

# Claim and delete in one statement; a failed publish rolls the delete back.
CLAIM = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING id, event_id, routing_key, payload
"""
# Polling is the default: measured here side by side (README), it was faster. A NOTIFY in
# the inserting transaction (an insert trigger) holds Postgres's global notify lock through
# the commit's WAL flush, so commits queue one behind another (90 POSTs/s against 230/s
# polling). Even sent after the commit, coalesced, NOTIFY wakes every hop for every order
# (114-151 against 179-220/s). In listen mode, a notify lost in a crash waits for the
# LISTEN_FALLBACK look.
NOTIFY = "NOTIFY outbox"
LISTEN_FALLBACK = 1.0  # seconds a listening publisher waits before it looks anyway


def _properties(event_id: Any, routing_key: str) -> aiormq.spec.Basic.Properties:
    return aiormq.spec.Basic.Properties(
        message_id=str(event_id),
        message_type=routing_key,
        content_type="application/json",
        delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
    )


async def publish_batch(
    db: AsyncConnection[Any], channel: AbstractChannel, exchange: str, limit: int
) -> int:
    """One transaction: claim up to `limit` rows, publish them, await every confirm, commit."""
    async with db.transaction():
        cursor = await db.execute(CLAIM, (limit,))
        rows = sorted(await cursor.fetchall())
        if rows:
            # Through aio-pika's own aiormq channel, each publish not waiting for its frames
            # to be flushed: the batch leaves in one burst, and every confirm is awaited.
            underlay = await channel.get_underlay_channel()  # anew: the connection is robust
            assert isinstance(underlay, aiormq.Channel)  # whose basic_publish takes wait
            await asyncio.gather(
                *(
                    underlay.basic_publish(
                        p,
                        exchange=exchange,
                        routing_key=key,
                        properties=_properties(e, key),
                        mandatory=True,
                        wait=False,
                    )
                    for _, e, key, p in rows
                )
            )
    return len(rows)


class Notifier:
    """Wakes the publisher after commits; the commits made while a NOTIFY is on its way
    share the next one, so a busy API sends far fewer NOTIFYs than it commits orders."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn  # autocommit, this notifier's own
        self._pending = asyncio.Event()

    def committed(self) -> None:
        self._pending.set()

    async def run(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            await self.conn.execute(NOTIFY)


class Wake:
    """Waits for a NOTIFY (listen) or for the poll interval (poll) between empty batches."""

    def __init__(self, settings: Settings, listener: AsyncConnection[Any] | None) -> None:
        self.interval = settings.outbox_poll_interval
        self.listener = listener

    async def wait(self) -> None:
        if self.listener is None:
            await asyncio.sleep(self.interval)
            return
        async for _ in self.listener.notifies(timeout=LISTEN_FALLBACK, stop_after=1):
            pass

    async def drain(self) -> None:
        """Forget the notifications already received: the next batch covers them."""
        if self.listener is not None:
            async for _ in self.listener.notifies(timeout=0):
                pass


async def run_publisher(settings: Settings, service: str, stopping: asyncio.Event) -> None:
    """Publish `service`'s outbox (orders or payments) to its exchange until `stopping`."""
    exchange_name = settings.orders_exchange if service == "orders" else settings.payments_exchange
    role = f"{service}-publisher"
    async with await aio_pika.connect_robust(settings.amqp_url) as broker:
        channel = await broker.channel(publisher_confirms=True)
        await declare_exchange(channel, exchange_name)
        conninfo = settings.conninfo(service, role)
        listener = None
        if settings.outbox_wake == "listen":
            listener = await AsyncConnection.connect(conninfo, autocommit=True)
            await listener.execute("LISTEN outbox")
        wake = Wake(settings, listener)
        try:
            async with await AsyncConnection.connect(conninfo) as db:
                while not stopping.is_set():
                    await wake.drain()
                    if (
                        await publish_batch(db, channel, exchange_name, settings.outbox_batch)
                        < settings.outbox_batch
                    ):
                        await wake.wait()
        finally:
            if listener is not None:
                await listener.close()
