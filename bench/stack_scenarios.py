"""The benchmarks that load a running Stack over HTTP: POST throughput and latency, end to end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from bench.load import Result, closed_loop, open_loop, quiet
from bench.procfs import cpu_seconds
from bench.scenarios import Figures
from bench.stack import Stack
from tests.support import eventually


def order_body(i: int) -> dict[str, Any]:
    return {"customer_id": 1 + i % 5, "product_name": "bench", "quantity": 1, "price": "9.99"}


async def http(stack: Stack) -> Figures:
    """POST /api/v1/orders: saturation throughput, then latency at fixed rates."""
    url = f"{stack.orders.url}/api/v1/orders"
    await open_loop(url, order_body, rate=200, seconds=2)  # warm up
    figures: Figures = {}
    families = stack.pids()
    before = {name: cpu_seconds(pids) for name, pids in families.items()}
    await quiet()  # what the stack's start-up or an earlier load left running
    saturation = await closed_loop(url, order_body, workers=64, seconds=10)
    figures["cpu_seconds"] = {
        name: cpu_seconds(pids) - before[name] for name, pids in families.items()
    }
    figures["wall_seconds"] = saturation.seconds
    figures["saturation_per_s"] = saturation.rate
    figures["saturation_errors"] = saturation.errors
    for rate in (100, 500, 1000):
        await quiet()  # a backlog left by the load before would count in this one
        result = await open_loop(url, order_body, rate=rate, seconds=6)
        figures[f"rate_{rate}"] = _latency(result)
    return figures


def _latency(result: Result) -> Figures:
    return {
        "achieved_per_s": result.rate,
        "p50_ms": result.percentile(0.50),
        "p99_ms": result.percentile(0.99),
        "errors": result.errors,
    }


async def end_to_end(stack: Stack, *, rate: int = 200, seconds: float = 8) -> Figures:
    """From POST to the new orders_count being visible, at a fixed rate."""
    await quiet()  # after 1,000/s the payment pipeline is still working off its backlog
    seen: list[tuple[float, int]] = []  # (when, projection position)
    stop = asyncio.Event()

    async def watch() -> None:
        async with await psycopg.AsyncConnection.connect(
            stack.customers_db.conninfo(), autocommit=True
        ) as db:
            while not stop.is_set():
                cursor = await db.execute(
                    "SELECT position FROM projection_positions WHERE name = 'orders_count'"
                )
                row = await cursor.fetchone()
                seen.append((time.monotonic(), int(row[0]) if row else 0))
                await asyncio.sleep(0.002)  # the sampling interval of the measurement

    watcher = asyncio.create_task(watch())
    result = await open_loop(
        f"{stack.orders.url}/api/v1/orders", order_body, rate=rate, seconds=seconds
    )
    positions = _positions(stack, [r["id"] for r in result.responses])
    last = max(positions.values())
    await eventually(lambda: bool(seen) and seen[-1][1] >= last, within=30, what="counted")
    stop.set()
    await watcher
    latencies = []
    for due, response in zip(result.dues, result.responses, strict=True):
        position = positions[response["id"]]
        visible = next((when for when, p in seen if p >= position), None)
        if visible is not None:
            latencies.append(visible - due)
    counted = Result(ok=len(latencies), seconds=result.seconds, latencies=latencies)
    return {**_latency(counted), "orders": result.ok, "visible": len(latencies)}


def _positions(stack: Stack, order_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(stack.orders_db.conninfo()) as conn:
        rows = conn.execute(
            "SELECT originator_id::text, notification_id FROM orders_events"
            " WHERE originator_version = 1 AND originator_id = ANY(%s::uuid[])",
            (order_ids,),
        ).fetchall()
    return {order_id: int(position) for order_id, position in rows}
