"""Partitioned read models: one projector per partition held, in as many processes as run.

The order log is published in P partitions (contracts.partitions). A partitioned projector
process takes its fair share of them (projections.claims) and runs, for each partition it
holds, the projector of projections.projector on that partition alone: the partition's
own queue, its own positions (each read model's tracking row `<name>/<index>of<P>`, moved
in the read model's transaction as ever) and the feed filtered to the partition, which
heals its gaps. A partition let go, or lost with the database, stops at once; its
unacknowledged messages go back to the queue for whoever takes it next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncCursor, sql

from contracts.messaging import partition_queue
from contracts.partitions import layout
from projections.claims import Claims, ClaimSettings, member_name
from projections.feed import FeedClient
from projections.projection import Projection
from projections.projector import Projector, ProjectorSettings, Stats
from projections.sequencer import Event
from projections.tracking import partition_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InPartition:
    """A read model, as kept from one partition: the same tables and code, its own
    tracking row and lock."""

    projection: Projection
    partition: str

    @property
    def name(self) -> str:
        return partition_name(self.projection.name, self.partition)

    @property
    def tables(self) -> Any:
        return self.projection.tables

    def schema(self, suffix: str = "") -> sql.Composed:
        return self.projection.schema(suffix)

    async def apply(self, cur: AsyncCursor[Any], events: Sequence[Event], suffix: str = "") -> None:
        await self.projection.apply(cur, events, suffix)


@dataclass
class _Running:
    projector: Projector
    feed: FeedClient
    stopping: asyncio.Event
    task: asyncio.Task[None]


class PartitionedProjector:
    """Keeps `projections` from the partitions of a layout of `partitions`, sharing them
    with every other process of the same group."""

    def __init__(
        self,
        projections: Sequence[Projection],
        settings: ProjectorSettings,
        feed_url: str,
        partitions: int,
        *,
        member: str | None = None,
        claim_interval: float = 1.0,
        member_ttl: float = 3.0,
    ) -> None:
        self.projections = sorted(projections, key=lambda projection: projection.name)
        self.settings = settings
        self.feed_url = feed_url
        self.partitions = [str(partition) for partition in layout(partitions)]
        names = "+".join(projection.name for projection in self.projections)
        self.claims = Claims(
            ClaimSettings(
                conninfo=settings.conninfo,
                group=f"{names}/{partitions}",
                partitions=tuple(self.partitions),
                member=member or member_name(),
                interval=claim_interval,
                ttl=member_ttl,
            )
        )
        self.running: dict[str, _Running] = {}
        self._ended = Stats()  # what the projectors of partitions let go had done

    @property
    def held(self) -> frozenset[str]:
        return self.claims.held

    @property
    def stats(self) -> Stats:
        """Over every partition this process has applied, since it started."""
        return sum((running.projector.stats for running in self.running.values()), self._ended)

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            await self.claims.run(stopping, self._hold)
        finally:
            await self._hold(frozenset())

    async def _hold(self, held: frozenset[str]) -> None:
        for partition in sorted(set(self.running) - held):
            await self._stop(partition)
        for partition in sorted(held - set(self.running)):
            self._start(partition)

    def _start(self, partition: str) -> None:
        settings = self.settings
        subscription = dataclasses.replace(
            settings.subscription,
            queue=partition_queue(settings.subscription.queue, partition),
            partition=partition,
        )
        feed = FeedClient(self.feed_url, partition=partition)
        projector = Projector(
            [InPartition(projection, partition) for projection in self.projections],
            dataclasses.replace(settings, subscription=subscription),
            feed,
        )
        stopping = asyncio.Event()
        task = asyncio.create_task(projector.run(stopping), name=f"projector {partition}")
        self.running[partition] = _Running(projector, feed, stopping, task)

    async def _stop(self, partition: str) -> None:
        running = self.running.pop(partition)
        running.stopping.set()
        try:
            await running.task
        finally:
            await running.feed.aclose()
            self._ended += running.projector.stats
