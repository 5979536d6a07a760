"""Rebuild and verify a read model from the event feed, through the projection's own code.

Both build a copy of the read model's tables (a table suffix) from position 0. A rebuild
builds while the live tables keep serving, then pauses the live projectors (their locks),
catches the copy up to the head of the feed and swaps it in together with the positions, in
one transaction. A rebuild is also how a read model changes its layout of partitions: the
swap replaces the old layout's tracking rows by the new layout's, each at the head, so the
old layout's projectors stop (they find no row to lock) and the new layout's start from
there (docs/decisions/0015-partitioned-read-models.md). A verify builds the copy up to the
live positions, in the same snapshot as the live rows, and compares them row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from projections.feed import FeedClient
from projections.projection import Projection
from projections.sequencer import Event
from projections.tracking import (
    NOTIFY_POSITION,
    ROWS_OF,
    SESSION_LOCK,
    SESSION_UNLOCK,
    partition_in,
    tracked_names,
)

REBUILD, VERIFY = "_rebuild", "_verify"


class Progress(Protocol):
    """Told about every page applied (the command line shows it)."""

    def advance(self, events: int, position: int, head: int | None) -> None: ...


@dataclass(frozen=True)
class Difference:
    table: str
    key: str
    live: str
    expected: str


async def build_copy(
    db: psycopg.AsyncConnection[Any],
    projections: Sequence[Projection],
    feed: FeedClient,
    suffix: str,
    progress: Progress,
    *,
    after: int = 0,
    upto: int | None = None,
    keep: Callable[[Event], bool] | None = None,
) -> int:
    """Apply the feed after `after` (up to `upto`; only what `keep` keeps) to each copy;
    the position reached."""
    position = after
    async for page in feed.pages(after, upto):
        kept = page if keep is None else [event for event in page if keep(event)]
        async with db.transaction():
            for projection in projections:
                await projection.apply(db.cursor(), kept, suffix)
        position = page[-1].position
        progress.advance(len(page), position, upto or feed.head)
    return position


async def fresh_copy(db: psycopg.AsyncConnection[Any], projection: Projection, suffix: str) -> None:
    for table in projection.tables:
        await db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table + suffix)))
    await db.execute(projection.schema(suffix))


async def rebuild(
    conninfo: str,
    projections: Sequence[Projection],
    feed: FeedClient,
    progress: Progress,
    *,
    partitions: int = 1,
) -> int:
    """Rebuild the read models' live tables from the feed, all swapped in at once, kept
    from then on in a layout of `partitions` (its tracking rows replace any other layout's);
    the position every one of them resumes from."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as db:
        for projection in projections:
            await fresh_copy(db, projection, REBUILD)
        position = await build_copy(db, projections, feed, REBUILD, progress)
        locks = await _every_lock(db, projections, partitions)
        for name in locks:  # the live projectors, of any layout, pause here
            await db.execute(SESSION_LOCK, (name,))
        try:
            position = await build_copy(db, projections, feed, REBUILD, progress, after=position)
            async with db.transaction():
                for projection in projections:
                    for table in projection.tables:
                        await _swap(db, table, REBUILD)
                    await _relayout(db, projection.name, partitions, position)
        finally:
            for name in reversed(locks):
                await db.execute(SESSION_UNLOCK, (name,))
    return position


async def _every_lock(
    db: psycopg.AsyncConnection[Any], projections: Sequence[Projection], partitions: int
) -> list[str]:
    """The locks of every tracking row the read models have, and of the layout's rows, in
    the order every projector takes them (by name), so nothing waits in a cycle."""
    names = set()
    for projection in projections:
        cursor = await db.execute(ROWS_OF, {"base": projection.name})
        names |= {str(row[0]) for row in await cursor.fetchall()}
        names |= set(tracked_names(projection.name, partitions))
    return sorted(names)


async def _relayout(
    db: psycopg.AsyncConnection[Any], name: str, partitions: int, position: int
) -> None:
    """The read model's tracking rows: the layout's, each at `position` (a partition's
    position holds every event of it up to there: the rebuild applied the whole log), its
    counters kept where the row was there before; any other layout's rows gone."""
    rows = tracked_names(name, partitions)
    await db.execute(
        f"{ROWS_OF.replace('SELECT name FROM', 'DELETE FROM')} AND NOT name = ANY(%(keep)s)",
        {"base": name, "keep": rows},
    )
    await db.execute(
        "INSERT INTO projection_positions (name) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
        (rows,),
    )
    await db.execute(
        "UPDATE projection_positions AS p SET position = %s, updated_at = now()"
        f" WHERE name = ANY(%s) RETURNING {NOTIFY_POSITION}",
        (position, rows),
    )


async def _swap(db: psycopg.AsyncConnection[Any], table: str, suffix: str) -> None:
    """Replace `table` by `table+suffix`, indexes renamed so the next copy can reuse names."""
    cursor = await db.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
        (table + suffix,),
    )
    indexes = [row[0] for row in await cursor.fetchall()]
    await db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    await db.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            sql.Identifier(table + suffix), sql.Identifier(table)
        )
    )
    for index in indexes:
        await db.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(index), sql.Identifier(index.replace(table + suffix, table, 1))
            )
        )


async def verify(
    conninfo: str,
    projection: Projection,
    feed: FeedClient,
    progress: Progress,
    *,
    partitions: int = 1,
) -> tuple[int, list[Difference]]:
    """Recompute the read model up to its live position (partitioned: each partition's
    events up to that partition's position; `feed` then tags every event with its
    partition); (the furthest position, rows that differ)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as db:
        await fresh_copy(db, projection, VERIFY)
        try:
            await db.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
            async with db.transaction():  # one snapshot: the live rows as of those positions
                names = tracked_names(projection.name, partitions)
                cursor = await db.execute(
                    "SELECT name, position FROM projection_positions WHERE name = ANY(%s)",
                    (names,),
                )
                found = {str(name): int(position) for name, position in await cursor.fetchall()}
                positions = {partition_in(name): found.get(name, 0) for name in names}
                position = max(positions.values())
                await build_copy(
                    db,
                    [projection],
                    feed,
                    VERIFY,
                    progress,
                    upto=position,
                    keep=lambda event: event.position <= positions[event.partition],
                )
                differences = [
                    d
                    for table, keys in projection.tables.items()
                    for d in await _differences(db, table, keys, VERIFY)
                ]
        finally:
            await db.set_isolation_level(None)
            for table in projection.tables:
                await db.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table + VERIFY))
                )
    return position, differences


async def _differences(
    db: psycopg.AsyncConnection[Any], table: str, keys: tuple[str, ...] | Any, suffix: str
) -> list[Difference]:
    statement = sql.SQL(
        "SELECT {keys}, to_jsonb(l), to_jsonb(c) FROM {live} l FULL JOIN {copy} c USING ({keys})"
        " WHERE to_jsonb(l) IS DISTINCT FROM to_jsonb(c) ORDER BY {keys}"
    ).format(
        keys=sql.SQL(", ").join(sql.Identifier(k) for k in keys),
        live=sql.Identifier(table),
        copy=sql.Identifier(table + suffix),
    )
    cursor = await db.execute(statement)
    width = len(keys)
    return [
        Difference(
            table=table,
            key=", ".join(f"{k}={v}" for k, v in zip(keys, row[:width], strict=True)),
            live=str(row[width]),
            expected=str(row[width + 1]),
        )
        for row in await cursor.fetchall()
    ]
