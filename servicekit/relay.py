"""The relay: publish a service's event log to RabbitMQ, in order, losing nothing.

One relay leads at a time (a Postgres advisory lock held by its session); others wait as
hot standbys. The leader reads envelopes after its position, publishes them with pipelined
publisher confirms, and stores a new position only after the broker confirmed every
message up to it (at most every `store_interval`, so an UPDATE is not paid per event). A
crash at any instant can therefore only re-publish what came after the stored position,
and consumers drop those duplicates by position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import psycopg
from aio_pika.abc import AbstractChannel
from pamqp.common import FieldTable
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contracts.codec import encode
from contracts.events import Envelope, IntegrationEvent
from contracts.partitions import PARTITION_HEADER, Partition
from servicekit import metrics, tracing
from servicekit.eventlog import Chain, EventLog
from servicekit.messaging import channel, keep_running
from servicekit.tracing import TRACEPARENT

log = logging.getLogger(__name__)

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)

# Created by the schema step (servicekit.schema), never by a relay starting.
RELAY_TABLE = """CREATE TABLE IF NOT EXISTS relay_positions (
    name text PRIMARY KEY,
    last_published bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now())"""
# Added with partitions: the layout the relay published in when it stored its position, and
# each partition's last published position then (servicekit.eventlog.Chain).
RELAY_CHAIN = """ALTER TABLE relay_positions
    ADD COLUMN IF NOT EXISTS partitions integer NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS chain bigint[]"""


class UnroutableError(RuntimeError):
    """The broker had no queue for a message: nothing is consuming that stream yet."""


class ConfirmTimeoutError(RuntimeError):
    """The broker did not confirm a page in time: the lead starts again from the last
    confirmed position (what was published meanwhile goes out twice, absorbed downstream
    by position)."""


@dataclass(frozen=True, kw_only=True)
class RelaySettings:
    name: str  # the relay's state row, and the key of its advisory lock
    exchange: str
    amqp_url: str
    conninfo: str  # the event store's database
    channel: str  # the event store's NOTIFY channel
    page_size: int = 500
    poll_interval: float = 1.0  # at most this long between reads, even with no NOTIFY
    interval: float = 0.0  # the shortest time between two reads woken by NOTIFY
    store_interval: float = 0.25  # the stored position trails the confirmed one by at most this
    standby_interval: float = 1.0  # how often a standby tries to take the lead
    max_backoff: float = 5.0
    partitions: int = 1  # the layout it publishes in (contracts.partitions); 1: none
    # A page the broker has not confirmed this long after it went out fails the lead, which
    # starts again from the confirmed position on a new connection: a confirm can be lost
    # when a queue's leader node dies, and waiting for it would stall the log for good.
    confirm_timeout: float = 10.0


def properties(item: Envelope[IntegrationEvent]) -> aiormq.spec.Basic.Properties:
    """The message's properties (DESIGN's messaging contract); a partitioned message's
    headers also name its partition, which routes it to that partition's queues."""
    headers: FieldTable = {
        "schema_version": item.schema_version,
        "position": item.position,
    }
    if item.partition is not None:
        headers[PARTITION_HEADER] = item.partition
    return aiormq.spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=PERSISTENT,
        message_id=str(item.id),
        message_type=item.type,
        correlation_id=item.correlation_id or None,
        timestamp=item.occurred_at,
        headers=headers,
    )


@dataclass(frozen=True)
class Publisher:
    """An exchange, published to through aio-pika's own aiormq channel: only that channel's
    `basic_publish` can hand a batch to the connection's writer without waiting for each
    message to be flushed (servicekit/tests/test_library_internals.py pins it)."""

    channel: aiormq.Channel
    exchange: str  # "" is the default exchange, whose routing keys are queue names

    @classmethod
    async def on(cls, channel: AbstractChannel, exchange: str) -> Publisher:
        underlay = await channel.get_underlay_channel()
        if not isinstance(underlay, aiormq.Channel):
            raise TypeError(f"aio-pika's channel runs on {type(underlay)!r}, not aiormq's")
        return cls(underlay, exchange)


async def publish_confirmed(
    publisher: Publisher,
    batch: list[Envelope[IntegrationEvent]],
    routing_key: str | None = None,
) -> None:
    """Publish in order, confirms pipelined; return once the broker confirmed all of them.

    The routing key is each event's type, unless one is given (a queue's name, with the
    default exchange, to feed a single consumer). Traced (servicekit.tracing), each
    message goes out in a PRODUCER span of its own, named in its `traceparent` header;
    untraced, nothing is done per message beyond publishing it.
    """
    if not tracing.ENABLED:
        await _publish_confirmed(publisher, batch, routing_key, properties)
        return
    destination = publisher.exchange or "amq.default"  # the default exchange is nameless
    with tracing.ProducerSpans(destination, routing_key, batch) as spans:

        def traced(item: Envelope[IntegrationEvent]) -> aiormq.spec.Basic.Properties:
            shown = properties(item)
            shown.headers[TRACEPARENT] = spans.traceparent(item)  # type: ignore[index]
            return shown

        await _publish_confirmed(publisher, batch, routing_key, traced)


async def _publish_confirmed(
    publisher: Publisher,
    batch: list[Envelope[IntegrationEvent]],
    routing_key: str | None,
    properties_of: Callable[[Envelope[IntegrationEvent]], aiormq.spec.Basic.Properties],
) -> None:
    """`publish_confirmed`, each message with the properties `properties_of` gives it.

    wait=False: each publish hands its frames to the connection's writer and goes on to
    await its confirm, instead of holding the channel until the writer has flushed them, so
    a batch leaves in one burst. The order stays (the channel's lock numbers the publishes
    one after another) and nothing counts as sent before its confirm: a return is a
    PublishError and a nack a DeliveryError, as through aio-pika's `Exchange.publish`.
    """
    results = await asyncio.gather(
        *(
            publisher.channel.basic_publish(
                encode(e),
                exchange=publisher.exchange,
                routing_key=routing_key or e.type,
                properties=properties_of(e),
                mandatory=True,
                wait=False,
            )
            for e in batch
        ),
        return_exceptions=True,
    )
    for item, result in zip(batch, results, strict=True):
        if isinstance(result, aio_pika.exceptions.PublishError):
            raise UnroutableError(
                f"no queue is bound to exchange {publisher.exchange!r} for "
                f"{routing_key or item.type!r}"
            ) from result
        if isinstance(result, BaseException):
            raise result


@dataclass(frozen=True)
class Stored:
    """A relay's stored state: its position, and the layout and chain it published in."""

    position: int
    partitions: int
    chain: Chain | None  # per partition, its last published position (None: unpartitioned)


async def published_position(session: psycopg.AsyncConnection[object], name: str) -> Stored:
    await session.execute(
        "INSERT INTO relay_positions (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,)
    )
    cursor = await session.execute(
        "SELECT last_published, partitions, chain FROM relay_positions WHERE name = %s", (name,)
    )
    row: Any = await cursor.fetchone()
    assert row is not None
    position, partitions, chain = row
    return Stored(int(position), int(partitions), dict(enumerate(chain)) if chain else None)


class Relay:
    def __init__(self, event_log: EventLog, settings: RelaySettings) -> None:
        self.log = event_log
        self.settings = settings
        self.published = 0  # messages confirmed by the broker since start
        self.confirmed = 0  # the last position the broker confirmed
        self.position = 0  # the last stored position: at most `store_interval` behind
        self.failures = 0  # times a lead ended in an error (broker or database trouble)
        self.reads = 0  # pages read, empty or not (a wake-up costs one)
        self.stores = 0  # position UPDATEs
        self.leading = False  # holds the lock (a standby does not)
        self._stored_at = 0.0
        self._last_read = -math.inf  # when the last relaying began
        # Partitioned: each partition's last position, as confirmed and as read ahead.
        self.chain: Chain = {}
        self._read_chain: Chain = {}
        name = settings.name
        self._position_metric = metrics.RELAY_POSITION.labels(name)
        self._leading_metric = metrics.RELAY_LEADING.labels(name)
        self._published_metric = metrics.RELAY_PUBLISHED.labels(name)
        self._confirm_metric = metrics.RELAY_CONFIRM.labels(name)

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
            try:
                await self._relay_as_leader(session, stopping)
            finally:
                self.leading = False
                self._leading_metric.set(0)

    async def _relay_as_leader(
        self, session: psycopg.AsyncConnection[object], stopping: asyncio.Event
    ) -> None:
        conninfo = self.settings.conninfo
        stored = await published_position(session, self.settings.name)
        self.position = stored.position
        self.confirmed, self._stored_at = self.position, time.monotonic()
        if self.settings.partitions > 1:
            await self._chain_from(session, stored)
        self.leading = True
        self._leading_metric.set(1)
        self._position_metric.set(self.confirmed)
        log.info("relay %s leads from position %d", self.settings.name, self.position)
        async with (
            channel(self.settings.amqp_url) as opened,
            await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as listener,
        ):
            await opened.declare_exchange(
                self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            publisher = await Publisher.on(opened, self.settings.exchange)
            await listener.execute(f'LISTEN "{self.settings.channel}"')
            news = True
            while not stopping.is_set():
                if news:
                    await self._relay_all(session, publisher)
                if self._store_due_in() <= 0:
                    await self._store(session)
                news = await self._wait_for_news(listener, stopping)
            await self._store(session)  # a clean stop leaves nothing to publish again

    async def _relay_all(
        self, session: psycopg.AsyncConnection[object], publisher: Publisher
    ) -> None:
        """Publish everything after the confirmed position, page by page.

        The next page is read while the broker confirms the current one. A page shorter than
        the page size means the log is drained: no second read to learn that it is empty
        (an event committed meanwhile sends a NOTIFY, which wakes the relay again).
        """
        self._last_read = time.monotonic()
        page = await self._read(session, self.confirmed)
        while page:
            started = time.monotonic()
            confirming = asyncio.ensure_future(publish_confirmed(publisher, page))
            full = len(page) == self.settings.page_size
            try:
                following = await self._read(session, page[-1].position) if full else []
                await self._confirm(confirming, len(page), started)
            finally:
                confirming.cancel()  # a no-op once confirmed; else the lead failed mid-page
            self._confirm_metric.observe(time.monotonic() - started)
            await self._confirmed(session, page, full)
            page = following

    async def _confirm(self, confirming: asyncio.Future[None], count: int, sent: float) -> None:
        """Until the broker confirms the page; ConfirmTimeoutError after `confirm_timeout`."""
        left = self.settings.confirm_timeout - (time.monotonic() - sent)
        try:
            await asyncio.wait_for(confirming, max(0.0, left))
        except TimeoutError:
            raise ConfirmTimeoutError(
                f"the broker confirmed none or part of a page of {count} within"
                f" {self.settings.confirm_timeout:g} s; publishing it again"
            ) from None

    async def _chain_from(self, session: psycopg.AsyncConnection[object], stored: Stored) -> None:
        """Each partition's last published position: as stored with the position, or, when
        the layout changed (or none was stored), looked up in the log at that position."""
        partitions = self.settings.partitions
        if stored.partitions == partitions and stored.chain is not None:
            chain = stored.chain
        else:
            chain = await self.log.chain_at(session, stored.position, partitions)
            log.info(
                "relay %s publishes in %d partitions from position %d",
                self.settings.name,
                partitions,
                stored.position,
            )
        self.chain, self._read_chain = dict(chain), dict(chain)

    async def _read(
        self, session: psycopg.AsyncConnection[object], after: int
    ) -> list[Envelope[IntegrationEvent]]:
        self.reads += 1
        if self.settings.partitions > 1:
            return await self.log.read_partitioned_from(
                session,
                after=after,
                limit=self.settings.page_size,
                partitions=self.settings.partitions,
                chain=self._read_chain,
            )
        return await self.log.read_from(
            session, after=after, limit=self.settings.page_size, previous=after or None
        )

    async def _confirmed(
        self,
        session: psycopg.AsyncConnection[object],
        page: list[Envelope[IntegrationEvent]],
        full: bool,
    ) -> None:
        """The broker confirmed every message of `page`: the position may move to its end.

        After a full page it is stored at once; after a short one, at most every
        `store_interval`: at everyday rates a page is an event or two, and an UPDATE per page
        would cost as much as publishing it. Until it is stored, a crash re-publishes what
        came after (at most a page, or `store_interval` of events), and consumers drop the
        duplicates by position.
        """
        self.published += len(page)
        self.confirmed = page[-1].position
        for item in page:
            if item.partition is not None:
                self.chain[Partition.parse(item.partition).index] = item.position
        self._published_metric.inc(len(page))
        self._position_metric.set(self.confirmed)
        if full or self._store_due_in() <= 0:
            await self._store(session)

    def _store_due_in(self) -> float:
        """Seconds until the confirmed position must be stored; inf with nothing to store."""
        if self.confirmed == self.position:
            return float("inf")
        return self._stored_at + self.settings.store_interval - time.monotonic()

    async def _store(self, session: psycopg.AsyncConnection[object]) -> None:
        """The UPDATE goes through the session that holds the lock: a relay that lost it
        cannot write."""
        if self.confirmed == self.position:
            return
        partitions = self.settings.partitions
        chain = [self.chain.get(index) for index in range(partitions)] if partitions > 1 else None
        await session.execute(
            "UPDATE relay_positions SET last_published = %s, partitions = %s, chain = %s,"
            " updated_at = now() WHERE name = %s",
            (self.confirmed, partitions, chain, self.settings.name),
        )
        self.position = self.confirmed
        self.stores += 1
        self._stored_at = time.monotonic()

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

    async def _wait_for_news(
        self, listener: psycopg.AsyncConnection[object], stopping: asyncio.Event
    ) -> bool:
        """Until a NOTIFY from the event store, the poll interval, a stop, or the moment the
        confirmed position is due to be stored: the first. True when there may be news (a
        NOTIFY, or the poll interval passed without one). A NOTIFY sooner than `interval`
        after the last read waits until `interval` has passed: the commits of that spell
        then share one page, one read and one confirm round trip."""
        started = time.monotonic()
        wait = min(self.settings.poll_interval, max(0.0, self._store_due_in()))
        notified = asyncio.ensure_future(self._notified(listener, wait))
        stopped = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({notified, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not notified.done():
            notified.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notified
            return False
        if notified.result():
            due = self._last_read + self.settings.interval - time.monotonic()
            if due > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), due)
            return True
        return time.monotonic() - started >= self.settings.poll_interval

    async def _notified(self, listener: psycopg.AsyncConnection[object], wait: float) -> bool:
        """Wait for a NOTIFY (at most `wait` seconds); True if one came. One wait takes
        every NOTIFY the socket holds, so a burst of commits costs one wake-up."""
        async for _ in listener.notifies(timeout=wait, stop_after=1):
            return True
        return False


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


class RelayLag(Collector):
    """How far a relay trails its log, read at each scrape: the public events after its
    confirmed position (a standby's: the stored one), and the age of the oldest of them.
    Registered by the relay process (servicekit.service.ServiceRelay.run)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[GaugeMetricFamily]:
        relay = self.relay
        name = relay.settings.name
        try:
            if relay.leading:
                position = relay.confirmed
                behind = relay.log.pending(position)
            else:  # a standby: how far the leader, wherever it runs, has stored
                lag = relay_lag(relay.log, relay.settings.conninfo, name)
                position, behind = lag["published_position"], lag["lag"]
            oldest = (
                relay.log.read_chained(after=position, limit=1, previous=None) if behind else []
            )
        except (psycopg.Error, OSError) as exc:  # the database is away: say nothing of lag
            log.debug("relay %s: lag not read: %s", name, exc)
            return
        age = (datetime.now(UTC) - oldest[0].occurred_at).total_seconds() if oldest else 0.0
        events = GaugeMetricFamily(
            "ordersystem_relay_lag_events",
            "Public events in the log that the relay has not published yet",
            labels=["relay"],
        )
        events.add_metric([name], behind)
        seconds = GaugeMetricFamily(
            "ordersystem_relay_lag_seconds",
            "Age of the oldest public event the relay has not published yet (0 when none)",
            labels=["relay"],
        )
        seconds.add_metric([name], max(0.0, age))
        yield events
        yield seconds
