"""The projector: a queue of its own, batches applied exactly once, poison set aside.

Each batch is one transaction: take the projection's lock, read its position, drop
duplicates, fill gaps from the feed, apply, store the new position; only then are the
messages acknowledged (one ack for the batch). A crash anywhere before the commit leaves the
messages unacknowledged and the position unchanged, so they are simply delivered again.

One projector may keep several read models of one database: each keeps its own lock and
position, and a batch is applied to all of them in the same transaction, so one queue, one
delivery and one wake-up serve them all (docs/decisions/0012-one-projector-per-database.md).
Their locks are taken in name order, so two projectors never wait on each other in a cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from prometheus_client import Counter, Gauge, Histogram

from contracts.codec import ContractError, decode
from contracts.events import ORDER_EVENTS_BINDING
from projections.feed import FeedClient, FeedUnavailableError
from projections.projection import Projection
from projections.sequencer import Event, Fetch, Hole, Outcome, sequence
from projections.tracking import (
    advance_all,
    ensure_tracking,
    lock_positions,
)
from servicekit import metrics
from servicekit.messaging import (
    Batching,
    Message,
    Poison,
    Subscription,
    consume,
    declare_consumer_queue,
    keep_running,
)
from servicekit.settings import BATCH_INTERVAL

log = logging.getLogger(__name__)


def stream_subscription(amqp_url: str, exchange: str, queue: str) -> Subscription:
    """A projector's queue of its own (`<queue>.dlq` holds its poison messages), bound to the
    whole stream: the gap check needs every position."""
    return Subscription(
        amqp_url=amqp_url, exchange=exchange, queue=queue, bindings=(ORDER_EVENTS_BINDING,)
    )


@dataclass(frozen=True, kw_only=True)
class ProjectorSettings:
    conninfo: str  # the read model's database
    subscription: Subscription  # stream_subscription(...)
    batch_size: int = 500
    interval: float = BATCH_INTERVAL  # the shortest time between two batches
    catch_up_interval: float = 2.0  # when idle, look at the feed this often
    max_backoff: float = 5.0


@dataclass
class Stats:
    applied: int = 0
    duplicates: int = 0
    healed: int = 0
    poisoned: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(
            self.applied + other.applied,
            self.duplicates + other.duplicates,
            self.healed + other.healed,
            self.poisoned + other.poisoned,
        )

    def add(self, outcome: Outcome, poisoned: int = 0) -> None:
        self.applied += len(outcome.apply)
        self.duplicates += outcome.duplicates
        self.healed += outcome.healed
        self.poisoned += poisoned


@dataclass(frozen=True)
class ReadModelMetrics:
    """One read model's children of the servicekit.metrics families."""

    position: Gauge
    applied: Counter
    duplicates: Counter
    healed: Counter
    visible: Histogram

    @classmethod
    def of(cls, name: str) -> ReadModelMetrics:
        return cls(
            metrics.READ_MODEL_POSITION.labels(name),
            metrics.READ_MODEL_APPLIED.labels(name),
            metrics.READ_MODEL_DUPLICATES.labels(name),
            metrics.READ_MODEL_HEALED.labels(name),
            metrics.COMMIT_TO_VISIBLE.labels(name),
        )


def known_position(message: Message) -> int | None:
    raw = (message.headers or {}).get("position")
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    return None


async def declare_topology(
    channel: AbstractChannel, settings: ProjectorSettings
) -> tuple[AbstractQueue, AbstractExchange]:
    """The projector's queue bound to the stream, and its dead-letter exchange."""
    queue = settings.subscription
    return await declare_consumer_queue(channel, queue.exchange, queue.queue, queue.bindings)


def _once_each(fetch: Fetch) -> Fetch:
    """`fetch`, asking the feed once for each range however often it is asked."""
    fetched: dict[tuple[int, int], list[Event]] = {}

    async def once(after: int, upto: int) -> list[Event]:
        if (after, upto) not in fetched:
            fetched[after, upto] = await fetch(after, upto)
        return fetched[after, upto]

    return once


class Projector:
    def __init__(
        self, projections: Sequence[Projection], settings: ProjectorSettings, feed: FeedClient
    ):
        self.projections = sorted(projections, key=lambda projection: projection.name)
        self.name = "+".join(projection.name for projection in self.projections)
        self.settings = settings
        self.feed = feed
        self.stats = Stats()  # over all its read models
        # Made now, not at the first commit: a series that starts at 0 lets a rate see the
        # first events too.
        self._figures = [ReadModelMetrics.of(p.name) for p in self.projections]
        self.failures = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Project until `stopping` is set; back off and start again on any failure."""
        await keep_running(
            f"projector {self.name}",
            lambda: self._project(stopping),
            stopping,
            on_failure=self._failed,
            max_backoff=self.settings.max_backoff,
        )

    def _failed(self, _: Exception) -> None:
        self.failures += 1

    async def _project(self, stopping: asyncio.Event) -> None:
        settings = self.settings
        async with await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True) as db:
            await self.prepare(db)
            await self._catch_up_if_possible(db)
            await consume(
                settings.subscription,
                Batching(
                    size=settings.batch_size,
                    interval=settings.interval,
                    idle=settings.catch_up_interval,
                ),
                stopping,
                lambda batch: self._flush(db, batch),
                on_idle=lambda: self._catch_up_if_possible(db),
            )

    async def prepare(self, db: psycopg.AsyncConnection[Any]) -> None:
        for projection in self.projections:
            await ensure_tracking(db, projection.name)  # its tables are the schema step's

    async def _flush(self, db: psycopg.AsyncConnection[Any], batch: list[Message]) -> list[Poison]:
        """Apply a batch in one transaction; what could not be read is returned as poison
        (its position, when known, is a hole the feed fills)."""
        arrivals: list[Event | Hole] = []
        poison: list[Poison] = []
        own = self.settings.subscription.partition
        for message in batch:
            try:
                arrival = decode(message.body)
            except ContractError as exc:
                poison.append(Poison(message, str(exc)))
                if (position := known_position(message)) is not None:
                    arrivals.append(Hole(position))  # its event is fetched from the feed
                continue
            if own is not None and arrival.partition != own:  # sent here by hand, never routed
                poison.append(Poison(message, f"of partition {arrival.partition}, not {own}"))
                continue
            arrivals.append(arrival)
        outcomes = await self._apply(db, arrivals, poisoned=len(poison))
        for index, outcome in enumerate(outcomes):
            self.stats.add(outcome, 0 if index else len(poison))  # each poison counted once
        self._committed(outcomes)
        return poison

    async def _apply(
        self, db: psycopg.AsyncConnection[Any], arrivals: list[Event | Hole], poisoned: int = 0
    ) -> list[Outcome]:
        """The batch applied to every read model, each from its own position, in one
        transaction."""
        async with db.transaction():
            cur = db.cursor()
            positions = await self._lock(cur)
            return await self._apply_locked(
                cur, {name: arrivals for name in positions}, positions, poisoned
            )

    async def catch_up(self, db: psycopg.AsyncConnection[Any]) -> int:
        """Apply whatever the feed has beyond the stored positions, one page at a time for
        every read model (one read, one transaction); how many were applied."""
        applied = 0
        while True:
            async with db.transaction():
                cur = db.cursor()
                positions = await self._lock(cur)
                page = await self.feed.page(min(positions.values()))
                if not page:
                    return applied
                beyond = {  # a read model ahead of the others skips what it has
                    name: [event for event in page if event.position > position]
                    for name, position in positions.items()
                }
                outcomes = await self._apply_locked(cur, beyond, positions)
            for outcome in outcomes:
                self.stats.add(outcome)
                applied += len(outcome.apply)
            self._committed(outcomes)

    def _committed(self, outcomes: list[Outcome]) -> None:
        """Each read model's figures (servicekit.metrics), once its transaction committed:
        what it applied is visible from now on."""
        now = datetime.now(UTC)
        for figures, outcome in zip(self._figures, outcomes, strict=True):
            figures.position.set(outcome.position)
            figures.applied.inc(len(outcome.apply))
            figures.duplicates.inc(outcome.duplicates)
            figures.healed.inc(outcome.healed)
            for event in outcome.apply:
                figures.visible.observe(max(0.0, (now - event.occurred_at).total_seconds()))

    async def _lock(self, cur: psycopg.AsyncCursor[Any]) -> dict[str, int]:
        return await lock_positions(cur, [projection.name for projection in self.projections])

    async def _apply_locked(
        self,
        cur: psycopg.AsyncCursor[Any],
        arrivals: Mapping[str, Sequence[Event | Hole]],
        positions: Mapping[str, int],
        poisoned: int = 0,
    ) -> list[Outcome]:
        """Under the read models' locks: each one's arrivals sequenced from its position,
        applied, and its position advanced (one statement for all)."""
        moves: dict[str, tuple[Outcome, int]] = {}
        partition = self.settings.subscription.partition  # the stream its positions are of
        fetch = _once_each(self.feed.fetch)  # read models at one position heal from one read
        for projection in self.projections:
            name = projection.name
            outcome = await sequence(positions[name], arrivals[name], fetch, partition)
            await projection.apply(cur, outcome.apply)
            moves[name] = (outcome, poisoned)
        await advance_all(cur, moves)
        return [outcome for outcome, _ in moves.values()]

    async def _catch_up_if_possible(self, db: psycopg.AsyncConnection[Any]) -> None:
        """Start-up and idle catch-up: heals a lost tail; an unreachable feed waits."""
        try:
            if applied := await self.catch_up(db):
                log.info("projector %s caught up %d from the feed", self.name, applied)
        except FeedUnavailableError as exc:
            log.info("projector %s: feed unavailable for catch-up: %s", self.name, exc)
