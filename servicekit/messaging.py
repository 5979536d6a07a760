"""The messaging runtime every relay, consumer and projector runs on.

Written once here: connecting to the broker, declaring a consumer's queue and its dead-letter
queue, running a session again after a failure, coalescing wake-ups into batches, setting
poison aside, and acknowledging a batch with one frame. The rules it follows (queue names,
where poison goes, the reason header) are the messaging contract, in `contracts.messaging`.

A consumer session consumes one queue in batches, at most one batch per `interval`: a
message that comes after a quiet spell is a batch at once, with whatever else has already
arrived; messages that come sooner after the last batch wait until `interval` has passed
since it, and go together. So at low rates nothing waits, and under load each wake-up, each
transaction and each acknowledgement is shared by everything that arrived in an interval;
a batch is empty after the idle interval without any message. The batch goes to the
caller's `on_batch`, which returns the messages it could not read; those
are copied to the dead-letter queue, and then the whole batch is acknowledged at once. A
failure in `on_batch` leaves the batch unacknowledged and ends the session, so the broker
delivers it again after the session reconnects.

Traced (servicekit.tracing), each message of a batch is handled in a CONSUMER span of its
own, whose parent is the message's `traceparent` header; the batch is handled at once, so
its spans share their start and end. Untraced, `on_batch` is called as it is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)

from contracts.messaging import (
    ORIGINAL_ROUTING_KEY_HEADER,
    POISON_REASON_HEADER,
    dead_letter_names,
    partitioned_exchange,
)
from contracts.partitions import PARTITION_HEADER
from servicekit import brokers, metrics, tracing

log = logging.getLogger(__name__)

Message = AbstractIncomingMessage


class UnprocessableError(Exception):
    """A message that is well-formed but can never be handled: dead-letter it, do not retry."""


@dataclass(frozen=True)
class Poison:
    """A message set aside, and why."""

    message: Message
    reason: str


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


@contextlib.asynccontextmanager
async def channel(url: str, *, prefetch: int | None = None) -> AsyncIterator[AbstractChannel]:
    """A broker connection's channel with publisher confirms (and a prefetch, to consume);
    `url` may list several nodes (servicekit.brokers)."""
    async with await brokers.connect(url, timeout=5) as broker:
        opened = await broker.channel(publisher_confirms=True, on_return_raises=True)
        if prefetch is not None:
            await opened.set_qos(prefetch_count=prefetch)
        yield opened


async def declare_consumer_queue(
    channel: AbstractChannel,
    exchange: str,
    queue: str,
    bindings: Sequence[str],
    partition: str | None = None,
) -> tuple[AbstractQueue, AbstractExchange]:
    """The consumer's queue bound to `exchange` by `bindings`, and its dead-letter exchange.

    A partition's queue (contracts.messaging) is bound instead to the stream's headers
    exchange by its `partition` header, that exchange to `exchange` by `bindings`, and it
    has a single active consumer: a second process consuming it waits as a standby.
    """
    dlx, dlq = dead_letter_names(queue)
    dead_letters = await channel.declare_exchange(dlx, aio_pika.ExchangeType.FANOUT, durable=True)
    held = await channel.declare_queue(dlq, durable=True, arguments={"x-queue-type": "quorum"})
    await held.bind(dead_letters)
    stream = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letters.name,
    }
    if partition is not None:
        arguments["x-single-active-consumer"] = True
    declared = await channel.declare_queue(queue, durable=True, arguments=arguments)
    if partition is None:
        for binding in bindings:
            await declared.bind(stream, binding)
        return declared, dead_letters
    partitioned = await channel.declare_exchange(
        partitioned_exchange(exchange), aio_pika.ExchangeType.HEADERS, durable=True
    )
    for binding in bindings:
        await partitioned.bind(stream, binding)
    await declared.bind(partitioned, arguments={"x-match": "all", PARTITION_HEADER: partition})
    return declared, dead_letters


async def dead_letter(dead_letters: AbstractExchange, poison: Poison) -> None:
    """Copy a message that cannot be read to the dead-letter queue, with why (logged once)."""
    message = poison.message
    log.warning(
        "poison message %s (%s) dead-lettered: %s",
        message.message_id,
        message.routing_key,
        poison.reason,
    )
    headers = dict(message.headers or {})
    headers.update(
        {
            POISON_REASON_HEADER: poison.reason[:500],
            ORIGINAL_ROUTING_KEY_HEADER: message.routing_key,
        }
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


@dataclass(frozen=True, kw_only=True)
class Batching:
    """At most `size` messages per batch and one batch per `interval` seconds; with nothing
    at all, a batch is empty after `idle` seconds."""

    size: int = 500
    interval: float = 0.0
    idle: float = 1.0


class Inbox:
    """What the broker delivered to one consumer, handed out in batches; and what of it is
    not acknowledged yet (its lag, servicekit.metrics)."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._arrived: asyncio.Queue[Message] = asyncio.Queue()
        self._unacked: collections.deque[Message] = collections.deque()  # in delivery order
        self._last_batch = -math.inf  # when the last batch was handed out

    @property
    def waiting(self) -> int:
        """Delivered and not yet handed out in a batch."""
        return self._arrived.qsize()

    async def consume(self, queue: AbstractQueue) -> None:
        await queue.consume(self._deliver)

    async def _deliver(self, message: Message) -> None:
        self._unacked.append(message)
        self._arrived.put_nowait(message)

    async def ack(self, batch: list[Message]) -> None:
        """Acknowledge a batch, the oldest messages delivered, with one frame."""
        await batch[-1].ack(multiple=True)
        for _ in batch:
            self._unacked.popleft()

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    def oldest_age(self) -> float:
        """Seconds since the event of the oldest unacknowledged message occurred (the
        message's timestamp, whole seconds); 0 when every message is acknowledged."""
        if not self._unacked:
            return 0.0
        stamp = self._unacked[0].timestamp
        if stamp is None:
            return 0.0
        if stamp.tzinfo is None:  # AMQP timestamps are POSIX seconds, read without a zone
            stamp = stamp.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - stamp).total_seconds())

    async def batch(self, stopping: asyncio.Event, batching: Batching) -> list[Message]:
        """The next batch; empty after `batching.idle` seconds without a message, or once
        `stopping` is set. A closed channel raises: nothing would ever arrive again."""
        first = await self._first(stopping, batching.idle)
        if first is None:
            return []
        # One timer per batch, not one wait per message: what arrives meanwhile queues up.
        remaining = self._last_batch + batching.interval - time.monotonic()
        if remaining > 0:  # not after a quiet spell: gather until the batch is due
            await asyncio.sleep(remaining)
        batch = [first]
        while len(batch) < batching.size and not self._arrived.empty():
            batch.append(self._arrived.get_nowait())
        self._last_batch = time.monotonic()
        return batch

    async def _first(self, stopping: asyncio.Event, wait: float) -> Message | None:
        self._check_open()
        if not self._arrived.empty():
            return self._arrived.get_nowait()
        arrived = asyncio.ensure_future(self._arrived.get())
        stopped = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({arrived, stopped}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if arrived.done():
            return arrived.result()
        arrived.cancel()
        self._check_open()
        return None

    def _check_open(self) -> None:
        if self.channel.is_closed:
            raise ConnectionError("the channel to the broker is closed")


@dataclass(frozen=True, kw_only=True)
class Subscription:
    """A consumer's queue: on which exchange, bound by which routing keys."""

    amqp_url: str
    exchange: str
    queue: str
    bindings: tuple[str, ...]
    prefetch: int = 1000
    partition: str | None = None  # a partition's queue: bound by its header (contracts)


OnBatch = Callable[[list[Message]], Awaitable[list[Poison]]]


async def consume(
    subscription: Subscription,
    batching: Batching,
    stopping: asyncio.Event,
    on_batch: OnBatch,
    on_idle: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """One consumer session, until `stopping`: each batch to `on_batch`, its poison to the
    dead-letter queue, then one acknowledgement for the whole batch. `on_idle` runs whenever
    a batch comes back empty."""
    async with channel(subscription.amqp_url, prefetch=subscription.prefetch) as opened:
        queue, dead_letters = await declare_consumer_queue(
            opened,
            subscription.exchange,
            subscription.queue,
            subscription.bindings,
            subscription.partition,
        )
        inbox = Inbox(opened)
        lag = QueueLag(subscription.queue, inbox)
        handle = traced(subscription.queue, on_batch) if tracing.ENABLED else on_batch
        await inbox.consume(queue)
        watching = asyncio.ensure_future(lag.watch(opened))
        try:
            while not stopping.is_set():
                batch = await inbox.batch(stopping, batching)
                if not batch:
                    if on_idle is not None and not stopping.is_set():
                        await on_idle()
                    continue
                for poison in await handle(batch):
                    await dead_letter(dead_letters, poison)
                    lag.dead_lettered.inc()
                await inbox.ack(batch)
                lag.acknowledged(batch[-1])
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching


def traced(queue: str, on_batch: OnBatch) -> OnBatch:
    """`on_batch` with each message in a CONSUMER span, a poison message's span failed and
    saying why; while it runs, `tracing.cause_of(message)` names the message's span."""

    async def handle(batch: list[Message]) -> list[Poison]:
        spans = tracing.ConsumerSpans(queue, batch)
        try:
            with spans.handling():
                poison = await on_batch(batch)
        except BaseException as error:
            spans.end(error)
            raise
        for item in poison:
            spans.poisoned(item.message, item.reason)
        spans.end()
        return poison

    return handle


class QueueLag:
    """A consumer's figures in servicekit.metrics, by its queue: its position, how many
    messages it has not applied (unacknowledged, plus ready in the queue as the broker said
    at most `depth_interval` ago) and the age of the oldest it holds."""

    depth_interval = 1.0  # seconds between two looks at the queue's depth

    def __init__(self, queue: str, inbox: Inbox) -> None:
        self.queue = queue
        self.ready = 0
        self.position = metrics.CONSUMER_POSITION.labels(queue)
        self.dead_lettered = metrics.DEAD_LETTERED.labels(queue)
        metrics.CONSUMER_LAG_EVENTS.labels(queue).set_function(lambda: self.ready + inbox.unacked)
        metrics.CONSUMER_LAG_SECONDS.labels(queue).set_function(inbox.oldest_age)

    def acknowledged(self, last: Message) -> None:
        position = (last.headers or {}).get("position")
        if isinstance(position, int) and not isinstance(position, bool):
            self.position.set(position)

    async def watch(self, channel: AbstractChannel) -> None:
        """Ask the broker for the queue's ready messages every `depth_interval` (a passive
        declare: one round trip); a failure ends only the watching, the session goes on."""
        try:
            while True:
                declared = await channel.declare_queue(self.queue, passive=True)
                self.ready = declared.declaration_result.message_count or 0
                await asyncio.sleep(self.depth_interval)
        except aio_pika.exceptions.AMQPError as exc:
            log.debug("queue %s: depth not read: %s", self.queue, exc)
