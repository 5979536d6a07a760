"""The orders_count read model: how many orders each customer has placed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncCursor, sql

from contracts.events import OrderCreatedV1
from projections.counters import add_counts, counter_table
from projections.sequencer import Event


class OrdersCount:
    name = "orders_count"
    tables = {"orders_count": ("customer_id",)}

    def schema(self, suffix: str = "") -> sql.Composed:
        return counter_table(f"orders_count{suffix}", "customer_id", "bigint", "orders_count")

    async def apply(self, cur: AsyncCursor[Any], events: Sequence[Event], suffix: str = "") -> None:
        created = Counter(e.data.customer_id for e in events if isinstance(e.data, OrderCreatedV1))
        await add_counts(
            cur, f"orders_count{suffix}", "customer_id", "bigint", "orders_count", created
        )
