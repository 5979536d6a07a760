"""The orders_count projection, wired to the customers database: run, rebuild, verify."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from customer_service.settings import Settings
from customer_service.store import migrate
from projections.feed import FeedClient
from projections.orders_by_status import OrdersByStatus
from projections.orders_count import OrdersCount
from projections.projector import Projector, ProjectorSettings, stream_subscription
from projections.rebuild import rebuild, verify
from projections.tracking import status
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
    """Keep these read models, together, until SIGINT or SIGTERM."""
    stopping = stop_on_signals()
    await asyncio.to_thread(migrate, settings.postgres)
    feed = FeedClient(settings.order_service_url)
    try:
        projections = [PROJECTIONS[name]() for name in sorted(set(which))]
        projector = Projector(projections, projector_settings(settings, which), feed)
        serve_metrics(Endpoint(settings.metrics_host, settings.projector_metrics_port))
        await projector.run(stopping)
    finally:
        await feed.aclose()


async def rebuild_command(settings: Settings, which: str) -> int:
    projection = PROJECTIONS[which]()
    await asyncio.to_thread(migrate, settings.postgres)
    feed = FeedClient(settings.order_service_url, page_size=5000)
    progress = Progress(f"rebuild {which}")
    try:
        position = await rebuild(settings.postgres.conninfo(), projection, feed, progress)
    finally:
        await feed.aclose()
    print(progress.summary(f"rebuilt {which} up to position {position}"))
    return 0


async def verify_command(settings: Settings, which: str) -> int:
    projection = PROJECTIONS[which]()
    feed = FeedClient(settings.order_service_url, page_size=5000)
    progress = Progress(f"verify {which}")
    try:
        position, differences = await verify(
            settings.postgres.conninfo(), projection, feed, progress
        )
    finally:
        await feed.aclose()
    for d in differences:
        print(f"DRIFT {d.table} {d.key}: live {d.live}, recomputed {d.expected}", file=sys.stderr)
    verdict = f"{len(differences)} difference(s)" if differences else "exact"
    print(progress.summary(f"verified {which} at position {position}: {verdict}"))
    return 1 if differences else 0


async def projection_health(settings: Settings, feed: FeedClient) -> dict[str, Any]:
    """Position, lag and counters; raises (readiness 503) when the projection is stalled."""
    async with await psycopg.AsyncConnection.connect(settings.postgres.conninfo()) as db:
        found = await status(db, OrdersCount.name)
    position = int(found["position"]) if found else 0
    try:  # one envelope is enough to know whether it is behind; the feed says where it ends
        behind = bool(await feed.page(position, limit=1))
    except Exception:  # the order service is down: nothing to compare with, not our failure
        return {**(found or {}), "lag": None}
    head = feed.head if feed.head is not None else position
    lag = max(head - position, 1) if behind else 0  # positions, internal events among them
    report = {**(found or {}), "lag": lag}
    idle_for = (
        (datetime.now(UTC) - datetime.fromisoformat(found["updated_at"])).total_seconds()
        if found
        else float("inf")
    )
    if behind and idle_for > settings.projection_stall_after:
        raise RuntimeError(f"stalled: {lag} position(s) behind for {idle_for:.0f} s")
    return report
