"""Operating the read side: a second projection, replay without double counting, audit."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

from tests.broker import drain
from tests.e2e.conftest import System, wait_for_payment
from tests.support import eventually, ordersystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(both_layouts: System) -> System:
    """Every test here runs unpartitioned and in four partitions."""
    return both_layouts


def tracking(system: System, projection: str) -> dict[str, int]:
    return system.tracking(projection)


def whole_feed(system: System, partitions: int = 1) -> list[dict[str, Any]]:
    """The feed; given a count, each event tagged with its partition of that layout."""
    query = {"limit": 5000} if partitions == 1 else {"limit": 5000, "partitions": partitions}
    items: list[dict[str, Any]] = httpx.get(
        f"{system.orders.url}/api/v1/events", params=query
    ).json()
    return items


def last_position(system: System) -> int:
    response = httpx.get(f"{system.orders.url}/api/v1/events?after=0&limit=1")
    return int(response.headers["x-last-position"])


async def settled(system: System, projection: str) -> dict[str, int]:
    last = last_position(system)
    await eventually(
        lambda: system.applied_up_to(last, projection),
        within=15,
        what=f"{projection} to reach {last}",
    )
    return tracking(system, projection)


def table(system: System, sql: str) -> dict[Any, int]:
    with psycopg.connect(system.customers_db.conninfo()) as conn:
        return {k: int(v) for k, v in conn.execute(sql).fetchall() if v}


def truth(system: System, sql: str) -> dict[Any, int]:
    with psycopg.connect(system.orders_db.conninfo()) as conn:
        return {k: int(v) for k, v in conn.execute(sql).fetchall() if v}


def orders_env(system: System) -> dict[str, str]:
    return dict(system.orders.env)


async def some_lifecycles(system: System) -> list[str]:
    ids = []
    body = {"customer_id": 3, "product_name": "Chair", "quantity": 1, "price": "40"}
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        for action in ("confirm", "ship", "cancel", None):
            order = (await client.post("/api/v1/orders", json=body)).json()
            await wait_for_payment(system, order["id"])
            if action == "ship":
                await client.post(f"/api/v1/orders/{order['id']}/confirm")
            if action:
                await client.post(f"/api/v1/orders/{order['id']}/{action}")
            ids.append(order["id"])
    return ids


async def test_orders_by_status_follows_the_lifecycle_and_verifies_and_rebuilds(
    system: System,
) -> None:
    await some_lifecycles(system)
    await settled(system, "orders_by_status")
    per_status = "SELECT status, count(*) FROM order_summaries GROUP BY status"

    live = table(system, "SELECT status, orders FROM orders_by_status")
    verified = await asyncio.to_thread(
        ordersystem, "verify", "orders-by-status", env=system.projector_env()
    )
    rebuilt = await asyncio.to_thread(
        ordersystem, "rebuild", "orders-by-status", env=system.projector_env()
    )

    assert live == truth(system, per_status)
    assert {"pending", "confirmed", "shipped", "cancelled"} <= set(live)
    assert verified.returncode == 0, verified.stderr
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert table(system, "SELECT status, orders FROM orders_by_status") == live


@pytest.mark.parametrize("to_queue", [False, True], ids=["to the exchange", "to one queue"])
async def test_a_replay_is_absorbed_without_double_counting(system: System, to_queue: bool) -> None:
    await some_lifecycles(system)
    before = await settled(system, "orders_count")
    counts = table(system, "SELECT customer_id, orders_count FROM orders_count")
    last = last_position(system)
    replaying = sent = len([e for e in whole_feed(system) if e["position"] <= last])
    queue = system.projection_queues()[0]  # partitioned: the first partition's
    target = ["--queue", queue] if to_queue else []
    if to_queue and system.partitions > 1:  # only that partition's events are its own
        own = [
            e
            for e in whole_feed(system, system.partitions)
            if e["position"] <= last and e["partition"] == "0of4"
        ]
        strangers, replaying = replaying - len(own), len(own)
    else:
        strangers = 0

    replayed = await asyncio.to_thread(
        ordersystem,
        "replay",
        "--from",
        "1",
        "--to",
        str(last),
        *target,
        env=orders_env(system),
    )
    await eventually(
        lambda: tracking(system, "orders_count")["duplicates"] >= before["duplicates"] + replaying,
        within=15,
        what="the replayed messages to be seen as duplicates",
    )
    await settled(system, "orders_count")

    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed positions 1..{last}" in replayed.stdout
    assert f": {sent} events in" in replayed.stdout
    assert table(system, "SELECT customer_id, orders_count FROM orders_count") == counts
    assert tracking(system, "orders_count")["applied"] == before["applied"]  # nothing twice
    if strangers:  # another partition's, sent to this one's queue by hand: set aside
        assert len(await drain(f"{queue}.dlq")) == strangers


def test_audit_prints_the_stream_and_the_state_at_a_moment(system: System) -> None:
    order = asyncio.run(some_lifecycles(system))[1]  # placed, paid, confirmed, shipped
    history = httpx.get(f"{system.orders.url}/api/v1/orders/{order}/events").json()

    table_out = ordersystem("audit", "order", order, env=orders_env(system))
    at_confirm = ordersystem(
        "audit", "order", order, "--at", history[2]["occurred_at"], env=orders_env(system)
    )
    before_it = ordersystem(
        "audit", "order", order, "--at", "2000-01-01T00:00:00", env=orders_env(system)
    )

    assert table_out.returncode == 0
    lines = table_out.stdout.splitlines()
    assert lines[0].split()[:3] == ["version", "occurred_at", "event"]
    assert [line.split()[2] for line in lines[2:]] == ["Placed", "Paid", "Confirmed", "Shipped"]
    assert "status" in at_confirm.stdout
    assert "confirmed" in at_confirm.stdout
    assert "(version 3)" in at_confirm.stdout
    assert before_it.returncode == 1


def test_audit_refuses_a_malformed_id_and_timestamp(system: System) -> None:
    bad_id = ordersystem("audit", "order", "nope", env=orders_env(system))
    bad_at = ordersystem(
        "audit",
        "order",
        "00000000-0000-0000-0000-000000000000",
        "--at",
        "yesterday",
        env=orders_env(system),
    )

    assert bad_id.returncode == 2
    assert bad_at.returncode == 2
    assert "ISO 8601" in bad_at.stderr
