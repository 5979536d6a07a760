"""Where each projection stands in the stream, stored with its read model.

The position moves only in the transaction that applies the events up to it, under a
per-projection transaction lock: so a batch is applied exactly once, two projectors take
turns, and a rebuild can pause the live projector by holding the same lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from contracts.partitions import Partition, layout
from projections.sequencer import Outcome

# Created by the schema step (customer_service.store.MIGRATIONS), never by a projector.
TRACKING_TABLE = """CREATE TABLE IF NOT EXISTS projection_positions (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    applied bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0,
    healed bigint NOT NULL DEFAULT 0,
    poisoned bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now())"""

SESSION_LOCK = "SELECT pg_advisory_lock(hashtext('projection:' || %s))"
SESSION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('projection:' || %s))"


class LayoutError(RuntimeError):
    """A read model has no tracking row under this name: it is kept in another layout of
    partitions (projections.rebuild changes it), or not yet in this one."""


def partition_name(name: str, partition: str) -> str:
    """A read model's tracking row (and lock) for one partition: `orders_count/2of4`."""
    return f"{name}/{partition}"


def tracked_names(name: str, partitions: int) -> list[str]:
    """A read model's tracking rows in a layout: `name` alone, unpartitioned."""
    if partitions == 1:
        return [name]
    return [partition_name(name, str(p)) for p in layout(partitions)]


def partition_in(name: str) -> str | None:
    """The partition a tracking row is of (`2of4`, as envelopes name it); None unpartitioned."""
    return name.split("/", 1)[1] if "/" in name else None


def read_model_of(name: str) -> str:
    """The read model a tracking row belongs to, whatever its partition."""
    return name.split("/", 1)[0]


ROWS_OF = (
    "SELECT name FROM projection_positions"
    " WHERE name = %(base)s OR starts_with(name, %(base)s || '/')"
)


async def ensure_tracking(conn: AsyncConnection[Any], name: str) -> None:
    """The tracking row, at position 0, unless the read model has rows of another layout
    (then it is kept in that one, and this row waits for a rebuild into this layout to make
    it). Serialised per read model, so two layouts never both start from nothing."""
    base, layout_of_name = read_model_of(name), _layout_of(name)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('layout:' || %s))", (base,))
        cursor = await conn.execute(ROWS_OF, {"base": base})
        others = [row[0] for row in await cursor.fetchall() if _layout_of(row[0]) != layout_of_name]
        if not others:
            await conn.execute(
                "INSERT INTO projection_positions (name) VALUES (%s) ON CONFLICT DO NOTHING",
                (name,),
            )


async def kept_in(conn: AsyncConnection[Any], name: str) -> int | None:
    """How many partitions the read model is kept in now; None before its first row."""
    cursor = await conn.execute(ROWS_OF, {"base": name})
    layouts = {_layout_of(str(row[0])) for row in await cursor.fetchall()}
    return max(layouts) if layouts else None


def _layout_of(name: str) -> int:
    partition = partition_in(name)
    return 1 if partition is None else Partition.parse(partition).count


LOCK_ALL = "SELECT pg_advisory_xact_lock(hashtext('projection:' || n)) FROM unnest(%s::text[]) n"
POSITIONS = "SELECT name, position FROM projection_positions WHERE name = ANY(%s)"
# Whoever moves a position tells the readers waiting for it (projections.watch), in the same
# statement: the notification is delivered when the transaction commits, never before.
NOTIFY_POSITION = "pg_notify('projection_positions', p.name || ':' || p.position)"
ADVANCE = (
    "UPDATE projection_positions AS p SET position = v.position, applied = p.applied + v.applied,"
    " duplicates = p.duplicates + v.duplicates, healed = p.healed + v.healed,"
    " poisoned = p.poisoned + v.poisoned, updated_at = now()"
    " FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
    " AS v(name, position, applied, duplicates, healed, poisoned) WHERE p.name = v.name"
    f" RETURNING {NOTIFY_POSITION}"
)


async def lock_positions(cur: AsyncCursor[Any], names: Sequence[str]) -> dict[str, int]:
    """Take each projection's lock for this transaction, in the order given (callers sort
    the names, so no two transactions wait on each other in a cycle), then read their
    positions: two statements, whatever the number."""
    await cur.execute(LOCK_ALL, (list(names),), prepare=True)
    await cur.execute(POSITIONS, (list(names),), prepare=True)  # after the locks: fresh
    positions = {name: int(position) for name, position in await cur.fetchall()}
    if missing := set(names) - set(positions):
        raise LayoutError(
            f"no tracking row for {', '.join(sorted(missing))}: the read model is kept in"
            " another layout of partitions (ORDER_PARTITIONS), or a rebuild has not made it yet"
        )
    return positions


async def advance_all(cur: AsyncCursor[Any], moves: Mapping[str, tuple[Outcome, int]]) -> None:
    """Store each projection's new position and add to its counters, in one statement;
    `moves` maps a name to its outcome and the poison messages of its batch."""
    if not moves:
        return
    outcomes = [outcome for outcome, _ in moves.values()]
    await cur.execute(
        ADVANCE,
        (
            list(moves),
            [outcome.position for outcome in outcomes],
            [len(outcome.apply) for outcome in outcomes],
            [outcome.duplicates for outcome in outcomes],
            [outcome.healed for outcome in outcomes],
            [poisoned for _, poisoned in moves.values()],
        ),
        prepare=True,
    )


async def status(conn: AsyncConnection[Any], name: str) -> dict[str, Any] | None:
    """The tracking row as a dict (position, counters, updated_at); None before the first run."""
    cur = conn.cursor()
    try:
        await cur.execute("SELECT * FROM projection_positions WHERE name = %s", (name,))
    except Exception:  # the table is created by the first projector run
        return None
    row = await cur.fetchone()
    if row is None or cur.description is None:
        return None
    found = dict(zip([c.name for c in cur.description], row, strict=True))
    updated: datetime = found["updated_at"]
    found["updated_at"] = updated.isoformat()
    return found
