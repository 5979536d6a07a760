"""The orders_by_status read model: how many orders are in each lifecycle status right now."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncCursor, sql

from contracts.events import OrderCreatedV1, OrderStatusChanged
from projections.counters import add_counts, counter_table
from projections.sequencer import Event


class OrdersByStatus:
    name = "orders_by_status"
    tables = {"orders_by_status": ("status",)}

    def schema(self, suffix: str = "") -> sql.Composed:
        return counter_table(f"orders_by_status{suffix}", "status", "text", "orders")

    async def apply(self, cur: AsyncCursor[Any], events: Sequence[Event], suffix: str = "") -> None:
        moves: Counter[str] = Counter()
        for event in events:
            if isinstance(event.data, OrderCreatedV1):
                moves[event.data.status] += 1
            elif isinstance(event.data, OrderStatusChanged):  # every lifecycle event is one
                moves[event.data.from_status] -= 1
                moves[event.data.status] += 1
        await add_counts(cur, f"orders_by_status{suffix}", "status", "text", "orders", moves)
