"""The two systems the comparison loads, each as a Subject: this project and the baseline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.baseline import stack as baseline
from bench.stack import start_stack
from tests.support import Databases

Among = Callable[[list[str]], Awaitable[set[str]]]


@dataclass
class Subject:
    """One system under load: where orders go, its processes, and how to see an order
    counted and settled."""

    name: str
    orders_url: str
    pids: Callable[[], dict[str, list[int]]]
    counted: Among
    settled: Among
    close: Callable[[], Awaitable[None]]


def order(i: int) -> dict[str, Any]:
    price = "1200.00" if i % 10 == 0 else "9.99"  # some payments fail, as in real traffic
    return {"customer_id": 1 + i % 5, "product_name": "bench", "quantity": 1, "price": price}


async def project(databases: Databases, prefix: str) -> Subject:
    stack = await asyncio.to_thread(start_stack, databases, prefix, whole=True)
    await stack.queues_declared()
    orders = await psycopg.AsyncConnection.connect(stack.orders_db.conninfo(), autocommit=True)
    customers = await psycopg.AsyncConnection.connect(
        stack.customers_db.conninfo(), autocommit=True
    )
    positions: dict[str, int] = {}

    async def counted(ids: list[str]) -> set[str]:
        unknown = [i for i in ids if i not in positions]
        if unknown:
            rows = await (
                await orders.execute(
                    "SELECT originator_id::text, notification_id FROM orders_events"
                    " WHERE originator_version = 1 AND originator_id = ANY(%s::uuid[])",
                    (unknown,),
                )
            ).fetchall()
            positions.update({order_id: int(position) for order_id, position in rows})
        row = await (
            await customers.execute(
                "SELECT position FROM projection_positions WHERE name = 'orders_count'"
            )
        ).fetchone()
        applied = int(row[0]) if row else 0
        return {i for i in ids if positions.get(i, applied + 1) <= applied}

    async def settled(ids: list[str]) -> set[str]:
        rows = await (
            await orders.execute(
                "SELECT id::text FROM order_summaries"
                " WHERE payment_status <> 'pending' AND id = ANY(%s::uuid[])",
                (ids,),
            )
        ).fetchall()
        return {r[0] for r in rows}

    async def close() -> None:
        await orders.close()
        await customers.close()
        await asyncio.to_thread(stack.stop)
        await stack.delete_messaging()

    return Subject("project", stack.orders.url, stack.pids, counted, settled, close)


async def conventional(prefix: str) -> Subject:
    stack = await asyncio.to_thread(baseline.start_stack, f"{prefix}.baseline")
    orders = await psycopg.AsyncConnection.connect(stack.conninfo("orders"), autocommit=True)
    customers = await psycopg.AsyncConnection.connect(stack.conninfo("customers"), autocommit=True)

    def among(conn: psycopg.AsyncConnection[Any], query: str) -> Among:
        async def found(ids: list[str]) -> set[str]:
            rows = await (await conn.execute(query, (ids,))).fetchall()
            return {r[0] for r in rows}

        return found

    async def close() -> None:
        await orders.close()
        await customers.close()
        await asyncio.to_thread(stack.remove)

    return Subject(
        "baseline",
        stack.orders.url,
        stack.pids,
        among(customers, baseline.COUNTED_AMONG),
        among(orders, baseline.SETTLED_AMONG),
        close,
    )
