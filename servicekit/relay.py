"""The relay: publish a service's event log to RabbitMQ, in order, losing nothing.

One relay leads at a time (a Postgres advisory lock held by its session); others wait as
hot standbys. The leader reads envelopes after its stored position, publishes them with
pipelined publisher confirms, and stores the new position only after the broker confirmed
every one of them. A crash at any instant can therefore only re-publish the unconfirmed
tail, and consumers drop those duplicates by position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import psycopg
from aio_pika.abc import AbstractExchange

from contracts.codec import encode
from contracts.events import Envelope, IntegrationEvent
from contracts.messaging import keep_running
from servicekit.eventlog import EventLog
from servicekit.postgres import PostgresSettings, create_application
from servicekit.signals import stop_on_signals

log = logging.getLogger(__name__)

STATE_TABLE = """CREATE TABLE IF NOT EXISTS relay_positions (
    name text PRIMARY KEY,
    last_published bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now())"""


class UnroutableError(RuntimeError):
    """The broker had no queue for a message: nothing is consuming that stream yet."""


@dataclass(frozen=True, kw_only=True)
class RelaySettings:
    name: str  # the relay's state row, and the key of its advisory lock
    exchange: str
    amqp_url: str
    conninfo: str  # the event store's database
    channel: str  # the event store's NOTIFY channel
    page_size: int = 500
    poll_interval: float = 1.0  # at most this long between reads, even with no NOTIFY
    standby_interval: float = 1.0  # how often a standby tries to take the lead
    max_backoff: float = 5.0


def message(item: Envelope[IntegrationEvent]) -> aio_pika.Message:
    return aio_pika.Message(
        encode(item),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(item.id),
        type=item.type,
        correlation_id=item.correlation_id or None,
        timestamp=item.occurred_at,
        headers={"schema_version": item.schema_version, "position": item.position},
    )


async def publish_confirmed(
    exchange: AbstractExchange,
    batch: list[Envelope[IntegrationEvent]],
    routing_key: str | None = None,
) -> None:
    """Publish in order, confirms pipelined; return once the broker confirmed all of them.

    The routing key is each event's type, unless one is given (a queue's name, with the
    default exchange, to feed a single consumer).
    """
    results = await asyncio.gather(
        *(
            exchange.publish(message(e), routing_key=routing_key or e.type, mandatory=True)
            for e in batch
        ),
        return_exceptions=True,
    )
    for item, result in zip(batch, results, strict=True):
        if isinstance(result, aio_pika.exceptions.PublishError):
            raise UnroutableError(
                f"no queue is bound to exchange {exchange.name!r} for {routing_key or item.type!r}"
            ) from result
        if isinstance(result, BaseException):
            raise result


async def published_position(session: psycopg.AsyncConnection[object], name: str) -> int:
    await session.execute(STATE_TABLE)
    await session.execute(
        "INSERT INTO relay_positions (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,)
    )
    cursor = await session.execute(
        "SELECT last_published FROM relay_positions WHERE name = %s", (name,)
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[index]


class Relay:
    def __init__(self, event_log: EventLog, settings: RelaySettings) -> None:
        self.log = event_log
        self.settings = settings
        self.published = 0  # messages confirmed by the broker since start
        self.position = 0  # the last confirmed (and stored) position
        self.failures = 0  # times a lead ended in an error (broker or database trouble)

    async def run(self, stopping: asyncio.Event) -> None:
        """Lead (or stand by) until `stopping` is set; back off and retry on any failure."""
        await keep_running(
            f"relay {self.settings.name}",
            lambda: self._lead(stopping),
            stopping,
            on_failure=self._failed,
            max_backoff=self.settings.max_backoff,
        )

    def _failed(self, _: Exception) -> None:
        self.failures += 1

    async def _lead(self, stopping: asyncio.Event) -> None:
        conninfo = self.settings.conninfo
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as session:
            if not await self._become_leader(session, stopping):
                return
            self.position = await published_position(session, self.settings.name)
            log.info("relay %s leads from position %d", self.settings.name, self.position)
            async with (
                await aio_pika.connect(self.settings.amqp_url, timeout=5) as broker,
                await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as listener,
            ):
                channel = await broker.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await channel.declare_exchange(
                    self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
                await listener.execute(f'LISTEN "{self.settings.channel}"')
                while not stopping.is_set():
                    if not await self._relay_page(session, exchange):
                        await self._wait_for_news(listener, stopping)

    async def _become_leader(
        self, session: psycopg.AsyncConnection[object], stopping: asyncio.Event
    ) -> bool:
        while not stopping.is_set():
            cursor = await session.execute(
                "SELECT pg_try_advisory_lock(hashtext('relay:' || %s))", (self.settings.name,)
            )
            row = await cursor.fetchone()
            if row is not None and row[0]:  # type: ignore[index]
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.standby_interval)
        return False

    async def _relay_page(
        self, session: psycopg.AsyncConnection[object], exchange: AbstractExchange
    ) -> bool:
        """Publish the next page; False when there was nothing to publish."""
        batch = await asyncio.to_thread(
            self.log.read_chained,
            after=self.position,
            limit=self.settings.page_size,
            previous=self.position or None,
        )
        if not batch:
            return False
        await publish_confirmed(exchange, batch)
        # Only now, with every message confirmed, does the position move. The UPDATE goes
        # through the session that holds the lock: a relay that lost it cannot write.
        await session.execute(
            "UPDATE relay_positions SET last_published = %s, updated_at = now() WHERE name = %s",
            (batch[-1].position, self.settings.name),
        )
        self.position = batch[-1].position
        self.published += len(batch)
        return True

    async def _wait_for_news(
        self, listener: psycopg.AsyncConnection[object], stopping: asyncio.Event
    ) -> None:
        """Until a NOTIFY from the event store, the poll interval, or a stop: the first."""
        notified = asyncio.ensure_future(self._notified(listener))
        stopped = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({notified, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not notified.done():
            notified.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notified
        elif notified.exception() is not None:
            raise notified.exception()  # type: ignore[misc]

    async def _notified(self, listener: psycopg.AsyncConnection[object]) -> None:
        async for _ in listener.notifies(timeout=self.settings.poll_interval, stop_after=1):
            pass


def relay_lag(event_log: EventLog, conninfo: str, name: str) -> dict[str, int]:
    """The relay's position and how many public events it has not published yet."""
    with psycopg.connect(conninfo, connect_timeout=2) as conn:
        try:
            row = conn.execute(
                "SELECT last_published FROM relay_positions WHERE name = %s", (name,)
            ).fetchone()
        except psycopg.errors.UndefinedTable:  # no relay has run yet
            row = None
    position = int(row[0]) if row else 0
    return {"published_position": position, "lag": event_log.pending(position)}


async def run_relay_process(
    make_app: Callable[[], Any],
    postgres: PostgresSettings,
    relay_for: Callable[[Any], Relay],
) -> None:
    """A relay process: build the application (tables in place), relay until a signal."""
    stopping = stop_on_signals()
    app = await asyncio.to_thread(create_application, make_app, postgres)
    relay = relay_for(app)
    try:
        await relay.run(stopping)
    finally:
        app.close()
    log.info("relay %s stopped after publishing %d", relay.settings.name, relay.published)
