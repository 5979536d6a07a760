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


async def ensure_tracking(conn: AsyncConnection[Any], name: str) -> None:
    await conn.execute(
        "INSERT INTO projection_positions (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,)
    )


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
    missing = set(names) - set(positions)
    assert not missing, f"no tracking row for {sorted(missing)}"
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
