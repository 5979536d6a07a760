"""The orders_count read model: how many orders each customer has placed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncCursor, sql

from contracts.events import OrderCreatedV1
from projections.sequencer import Event


class OrdersCount:
    name = "orders_count"
    tables = {"orders_count": ("customer_id",)}

    async def create(self, cur: AsyncCursor[Any], suffix: str = "") -> None:
        await cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " customer_id bigint PRIMARY KEY, orders_count bigint NOT NULL DEFAULT 0)"
            ).format(sql.Identifier(f"orders_count{suffix}"))
        )

    async def apply(self, cur: AsyncCursor[Any], events: Sequence[Event], suffix: str = "") -> None:
        created = Counter(e.data.customer_id for e in events if isinstance(e.data, OrderCreatedV1))
        if not created:
            return
        await cur.execute(
            sql.SQL(
                "INSERT INTO {t} AS t (customer_id, orders_count)"
                " SELECT * FROM unnest(%s::bigint[], %s::bigint[])"
                " ON CONFLICT (customer_id) DO UPDATE"
                " SET orders_count = t.orders_count + excluded.orders_count"
            ).format(t=sql.Identifier(f"orders_count{suffix}")),
            (list(created), list(created.values())),
        )
