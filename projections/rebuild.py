"""Rebuild and verify a read model from the event feed, through the projection's own code.

Both build a copy of the read model's tables (a table suffix) from position 0. A rebuild
builds while the live tables keep serving, then pauses the live projector (its lock),
catches the copy up to the head of the feed and swaps it in together with the position, in
one transaction. A verify builds the copy up to the live position, in the same snapshot as
the live rows, and compares them row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from projections.feed import FeedClient
from projections.projection import Projection
from projections.tracking import NOTIFY_POSITION, SESSION_LOCK, SESSION_UNLOCK, ensure_tracking

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
    projection: Projection,
    feed: FeedClient,
    suffix: str,
    progress: Progress,
    *,
    after: int = 0,
    upto: int | None = None,
) -> int:
    """Apply the feed after `after` (up to `upto`) to the copy; the position reached."""
    position = after
    async for page in feed.pages(after, upto):
        async with db.transaction():
            await projection.apply(db.cursor(), page, suffix)
        position = page[-1].position
        progress.advance(len(page), position, upto or feed.head)
    return position


async def fresh_copy(db: psycopg.AsyncConnection[Any], projection: Projection, suffix: str) -> None:
    for table in projection.tables:
        await db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table + suffix)))
    await db.execute(projection.schema(suffix))


async def rebuild(
    conninfo: str, projection: Projection, feed: FeedClient, progress: Progress
) -> int:
    """Rebuild the live tables from the feed; the position the live projector resumes from."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as db:
        await ensure_tracking(db, projection.name)
        await fresh_copy(db, projection, REBUILD)
        position = await build_copy(db, projection, feed, REBUILD, progress)
        await db.execute(SESSION_LOCK, (projection.name,))  # the live projector pauses here
        try:
            position = await build_copy(db, projection, feed, REBUILD, progress, after=position)
            async with db.transaction():
                for table in projection.tables:
                    await _swap(db, table, REBUILD)
                await db.execute(
                    "UPDATE projection_positions AS p SET position = %s, updated_at = now()"
                    f" WHERE name = %s RETURNING {NOTIFY_POSITION}",
                    (position, projection.name),
                )
        finally:
            await db.execute(SESSION_UNLOCK, (projection.name,))
    return position


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
    conninfo: str, projection: Projection, feed: FeedClient, progress: Progress
) -> tuple[int, list[Difference]]:
    """Recompute the read model up to the live position; (position, rows that differ)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as db:
        await fresh_copy(db, projection, VERIFY)
        try:
            await db.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
            async with db.transaction():  # one snapshot: the live rows as of that position
                cursor = await db.execute(
                    "SELECT position FROM projection_positions WHERE name = %s", (projection.name,)
                )
                row = await cursor.fetchone()
                position = int(row[0]) if row else 0
                await build_copy(db, projection, feed, VERIFY, progress, upto=position)
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
