"""Counter tables: a key and a count, changed by adding deltas (what both read models need)."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

from psycopg import AsyncCursor, sql


def counter_table(table: str, key: str, key_type: str, count: str) -> sql.Composed:
    """The table's DDL: a key and its count, created only if it does not exist."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} ({} {} PRIMARY KEY, {} bigint NOT NULL DEFAULT 0)"
    ).format(sql.Identifier(table), sql.Identifier(key), sql.SQL(key_type), sql.Identifier(count))


async def add_counts(
    cur: AsyncCursor[Any], table: str, key: str, key_type: str, count: str, deltas: Counter[Any]
) -> None:
    """Add each delta to its key's count (a row is created at the first one), in one statement."""
    changed = {k: v for k, v in deltas.items() if v}
    if not changed:
        return
    statement = _add_counts(table, key, key_type, count)
    await cur.execute(statement, (list(changed), list(changed.values())), prepare=True)


@functools.cache
def _add_counts(table: str, key: str, key_type: str, count: str) -> bytes:
    """The upsert of `add_counts`, composed once per table (its text is the prepared
    statement's key)."""
    return (
        sql.SQL(
            "INSERT INTO {t} AS t ({key}, {count})"
            " SELECT * FROM unnest(%s::{key_type}[], %s::bigint[])"
            " ON CONFLICT ({key}) DO UPDATE SET {count} = t.{count} + excluded.{count}"
        )
        .format(
            t=sql.Identifier(table),
            key=sql.Identifier(key),
            count=sql.Identifier(count),
            key_type=sql.SQL(key_type),
        )
        .as_bytes(None)
    )
