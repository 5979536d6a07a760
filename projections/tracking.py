"""Where each projection stands in the stream, stored with its read model.

The position moves only in the transaction that applies the events up to it, under a
per-projection transaction lock: so a batch is applied exactly once, two projectors take
turns, and a rebuild can pause the live projector by holding the same lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from projections.sequencer import Outcome

DDL = """CREATE TABLE IF NOT EXISTS projection_positions (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    applied bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0,
    healed bigint NOT NULL DEFAULT 0,
    poisoned bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now())"""

LOCK = "SELECT pg_advisory_xact_lock(hashtext('projection:' || %s))"
SESSION_LOCK = "SELECT pg_advisory_lock(hashtext('projection:' || %s))"
SESSION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('projection:' || %s))"


async def ensure_tracking(conn: AsyncConnection[Any], name: str) -> None:
    await conn.execute(DDL)
    await conn.execute(
        "INSERT INTO projection_positions (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,)
    )


async def lock_position(cur: AsyncCursor[Any], name: str) -> int:
    """Take the projection's lock for this transaction and read its position."""
    await cur.execute(LOCK, (name,))
    await cur.execute("SELECT position FROM projection_positions WHERE name = %s", (name,))
    row = await cur.fetchone()
    assert row is not None, f"no tracking row for {name}"
    return int(row[0])


async def advance(cur: AsyncCursor[Any], name: str, outcome: Outcome, poisoned: int = 0) -> None:
    await cur.execute(
        "UPDATE projection_positions SET position = %s, applied = applied + %s,"
        " duplicates = duplicates + %s, healed = healed + %s, poisoned = poisoned + %s,"
        " updated_at = now() WHERE name = %s",
        (outcome.position, len(outcome.apply), outcome.duplicates, outcome.healed, poisoned, name),
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
