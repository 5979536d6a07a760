"""The orders_count projection, wired to the customers database: run, rebuild, verify."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from contracts.partitions import layout
from customer_service.settings import Settings
from customer_service.store import migrate
from projections.feed import FeedClient, FeedUnavailableError
from projections.orders_by_status import OrdersByStatus
from projections.orders_count import OrdersCount
from projections.partitioned import PartitionedProjector
from projections.projection import Projection
from projections.projector import Projector, ProjectorSettings, stream_subscription
from projections.rebuild import rebuild, verify
from projections.tracking import kept_in, partition_name, status
from servicekit.metrics import Endpoint, serve_metrics
from servicekit.progress import Progress
from servicekit.signals import stop_on_signals

# The read models this service keeps, by their command-line names.
PROJECTIONS: dict[str, type[OrdersCount] | type[OrdersByStatus]] = {
    "orders-count": OrdersCount,
    "orders-by-status": OrdersByStatus,
}


def queue_name(prefix: str, which: Sequence[str]) -> str:
    """One queue per set of read models kept together: `<prefix>.orders-count`, or
    `<prefix>.orders-by-status+orders-count` for both in one projector."""
    return f"{prefix}.{'+'.join(sorted(set(which)))}"


def projector_settings(settings: Settings, which: Sequence[str]) -> ProjectorSettings:
    return ProjectorSettings(
        conninfo=settings.postgres.conninfo(),
        subscription=stream_subscription(
            settings.amqp_url,
            settings.exchange,
            queue_name(settings.projection_queue_prefix, which),
        ),
        batch_size=settings.projection_batch_size,
        interval=settings.batch_interval,
        catch_up_interval=settings.projection_catch_up_interval,
    )


async def run_projector(settings: Settings, which: Sequence[str]) -> None:
    """Keep these read models, together, until SIGINT or SIGTERM; partitioned, this
    process's share of the partitions (projections.partitioned)."""
    stopping = stop_on_signals()
    await asyncio.to_thread(migrate, settings.postgres)
    feed = FeedClient(settings.order_service_url)
    try:
        projections = [PROJECTIONS[name]() for name in sorted(set(which))]
        configured = projector_settings(settings, which)
        projector: Projector | PartitionedProjector = (
            PartitionedProjector(
                projections, configured, settings.order_service_url, settings.partitions
            )
            if settings.partitions > 1
            else Projector(projections, configured, feed)
        )
        serve_metrics(Endpoint(settings.metrics_host, settings.projector_metrics_port))
        await projector.run(stopping)
    finally:
        await feed.aclose()


async def rebuild_command(settings: Settings, which: str) -> int:
    """Rebuild one read model, in the layout it is kept in (ORDER_PARTITIONS must say it)."""
    projection = PROJECTIONS[which]()
    await asyncio.to_thread(migrate, settings.postgres)
    async with await psycopg.AsyncConnection.connect(settings.postgres.conninfo()) as db:
        kept = await kept_in(db, projection.name)
    if kept not in (None, settings.partitions):
        print(
            f"{which} is kept in {kept} partition(s), and ORDER_PARTITIONS is"
            f" {settings.partitions}: set it to {kept}, or change the layout of every read"
            " model with `ordersystem repartition`",
            file=sys.stderr,
        )
        return 2
    progress = Progress(f"rebuild {which}")
    position = await _rebuild([projection], settings, settings.partitions, progress)
    print(progress.summary(f"rebuilt {which} up to position {position}"))
    return 0


async def repartition_command(settings: Settings, partitions: int) -> int:
    """Rebuild every read model of this database into a layout of `partitions`, swapped in
    at once: their projectors of the old layout stop, the new layout's go on from there."""
    await asyncio.to_thread(migrate, settings.postgres)
    projections = [make() for make in PROJECTIONS.values()]
    progress = Progress(f"repartition into {partitions}")
    position = await _rebuild(projections, settings, partitions, progress)
    names = ", ".join(sorted(PROJECTIONS))
    print(progress.summary(f"{names} kept in {partitions} partition(s) from position {position}"))
    print(
        f"next: run the projectors, the order relay and both APIs with"
        f" ORDER_PARTITIONS={partitions}; the projectors of the old layout now wait"
    )
    return 0


async def _rebuild(
    projections: Sequence[Projection], settings: Settings, partitions: int, progress: Progress
) -> int:
    feed = FeedClient(settings.order_service_url, page_size=5000)
    try:
        conninfo = settings.postgres.conninfo()
        return await rebuild(conninfo, projections, feed, progress, partitions=partitions)
    finally:
        await feed.aclose()


async def verify_command(settings: Settings, which: str) -> int:
    projection = PROJECTIONS[which]()
    partitions = settings.partitions
    feed = FeedClient(
        settings.order_service_url,
        page_size=5000,
        partitions=partitions if partitions > 1 else None,
    )
    progress = Progress(f"verify {which}")
    try:
        position, differences = await verify(
            settings.postgres.conninfo(), projection, feed, progress, partitions=partitions
        )
    finally:
        await feed.aclose()
    for d in differences:
        print(f"DRIFT {d.table} {d.key}: live {d.live}, recomputed {d.expected}", file=sys.stderr)
    verdict = f"{len(differences)} difference(s)" if differences else "exact"
    print(progress.summary(f"verified {which} at position {position}: {verdict}"))
    return 1 if differences else 0


async def projection_health(settings: Settings, feed: FeedClient) -> dict[str, Any]:
    """Position, lag and counters; raises (readiness 503) when the projection is stalled.
    Partitioned, the same for each partition, and the lag summed."""
    if settings.partitions > 1:
        return await _partitions_health(settings, feed)
    async with await psycopg.AsyncConnection.connect(settings.postgres.conninfo()) as db:
        found = await status(db, OrdersCount.name)
    try:
        return await _health(settings, feed, found, None)
    except FeedUnavailableError:  # the order service is down: nothing to compare with
        return {**(found or {}), "lag": None}


async def _partitions_health(settings: Settings, feed: FeedClient) -> dict[str, Any]:
    names = {str(p): partition_name(OrdersCount.name, str(p)) for p in layout(settings.partitions)}
    async with await psycopg.AsyncConnection.connect(settings.postgres.conninfo()) as db:
        found = {partition: await status(db, name) for partition, name in names.items()}
    counters = ("applied", "duplicates", "healed", "poisoned")
    totals = {key: sum(int((row or {}).get(key, 0)) for row in found.values()) for key in counters}
    try:
        reports = {p: await _health(settings, feed, row, p) for p, row in found.items()}
    except FeedUnavailableError:
        unknown = {p: {**(row or {}), "lag": None} for p, row in found.items()}
        return {**totals, "lag": None, "partitions": unknown}
    lag = sum(report["lag"] for report in reports.values())
    return {**totals, "lag": lag, "partitions": reports}


async def _health(
    settings: Settings, feed: FeedClient, found: dict[str, Any] | None, partition: str | None
) -> dict[str, Any]:
    """One position's report: how far behind the feed (of its partition) it is."""
    position = int(found["position"]) if found else 0
    # one envelope is enough to know whether it is behind; the feed says where it ends
    behind = bool(await feed.page(position, limit=1, partition=partition))
    head = feed.head if feed.head is not None else position
    lag = max(head - position, 1) if behind else 0  # positions, internal events among them
    idle_for = (
        (datetime.now(UTC) - datetime.fromisoformat(found["updated_at"])).total_seconds()
        if found
        else float("inf")
    )
    if behind and idle_for > settings.projection_stall_after:
        where = f" in partition {partition}" if partition else ""
        raise RuntimeError(f"stalled{where}: {lag} position(s) behind for {idle_for:.0f} s")
    return {**(found or {}), "lag": lag}
