"""orders_count, black-box: every created order counted exactly once, whatever arrives."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
import pytest

from tests.broker import drain, publish_raw
from tests.e2e.conftest import System
from tests.support import eventually, ordersystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(both_layouts: System) -> System:
    """Every test here runs unpartitioned and in four partitions."""
    return both_layouts


async def new_customer(client: httpx.AsyncClient, system: System) -> int:
    body = {"customer_name": "Counted Customer", "address": "1 Counting Lane"}
    response = await client.post(f"{system.customers.url}/api/v1/customers", json=body)
    customer_id: int = response.json()["id"]
    return customer_id


async def count(client: httpx.AsyncClient, system: System, customer_id: int) -> int:
    response = await client.get(f"{system.customers.url}/api/v1/customers/{customer_id}")
    orders_count: int = response.json()["orders_count"]
    return orders_count


async def projection(client: httpx.AsyncClient, system: System) -> dict[str, Any]:
    ready = (await client.get(f"{system.customers.url}/health/ready")).json()
    report: dict[str, Any] = ready["checks"]["orders_count_projection"]
    return report


async def settled(client: httpx.AsyncClient, system: System) -> dict[str, Any]:
    """Wait until the projection has applied everything the feed has; its report."""
    feed = await client.get(f"{system.orders.url}/api/v1/events?after=0&limit=1")
    last = int(feed.headers["x-last-position"])

    await eventually(
        lambda: system.applied_up_to(last), within=15, what=f"the projection to reach {last}"
    )
    return await projection(client, system)


def place(client: httpx.AsyncClient, system: System, body: dict[str, Any]) -> Any:
    return client.post(f"{system.orders.url}/api/v1/orders", json=body)


def order_for(customer_id: int) -> dict[str, Any]:
    return {"customer_id": customer_id, "product_name": "Counted", "quantity": 1, "price": "2.00"}


async def test_fifty_concurrent_orders_count_fifty_and_touch_no_one_else(system: System) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        customer = await new_customer(client, system)
        await settled(client, system)  # earlier tests' orders are all counted by now
        others = [await count(client, system, c) for c in range(1, 6)]

        responses = await asyncio.gather(
            *(place(client, system, order_for(customer)) for _ in range(50))
        )
        assert {r.status_code for r in responses} == {201}

        async def counted() -> bool:
            return await count(client, system, customer) == 50

        await eventually(counted, within=10, what="orders_count to reach 50")
        await settled(client, system)
        assert await count(client, system, customer) == 50
        assert [await count(client, system, c) for c in range(1, 6)] == others


async def test_refused_orders_are_not_counted(system: System) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        customer = await new_customer(client, system)
        await place(client, system, order_for(customer))
        refused = [
            {**order_for(customer), "quantity": 0},
            {**order_for(customer), "price": "-1"},
            {**order_for(customer), "product_name": ""},
        ]
        for body in refused:
            assert (await place(client, system, body)).status_code == 422

        await settled(client, system)

        assert await count(client, system, customer) == 1


async def test_an_exact_copy_of_a_published_message_is_counted_once(system: System) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        customer = await new_customer(client, system)
        await place(client, system, order_for(customer))
        before = await settled(client, system)
        query = {"after": 0, "limit": 5000}
        if system.partitions > 1:  # as the relay published it
            query["partitions"] = system.partitions
        feed = (await client.get(f"{system.orders.url}/api/v1/events", params=query)).content
        ours = [line for line in feed_items(feed) if f'"customer_id":{customer},'.encode() in line]

        copy = msgspec.json.decode(ours[0])
        headers = {"position": copy["position"], "schema_version": 1}
        if "partition" in copy:
            headers["partition"] = copy["partition"]
        await publish_raw(system.exchange, ours[0], "order.created", headers)
        await eventually(
            lambda: _more_duplicates(client, system, before["duplicates"]),
            within=10,
            what="the copy to be seen",
        )

        assert await count(client, system, customer) == 1


async def _more_duplicates(client: httpx.AsyncClient, system: System, before: int) -> bool:
    return int((await projection(client, system))["duplicates"]) > before


def feed_items(body: bytes) -> list[bytes]:
    """The raw envelopes of a feed page, byte for byte (the feed is a JSON array of them)."""
    return [bytes(item) for item in msgspec.json.decode(body, type=list[msgspec.Raw])]


async def test_garbage_goes_to_the_dead_letter_queue_and_later_orders_still_count(
    system: System,
) -> None:
    garbage = [
        b"not json at all",
        b'{"hello": "world"}',
        b'{"id": 1, "type": "order.created", "schema_version": 99}',
        b"",
    ]
    async with httpx.AsyncClient(timeout=20) as client:
        customer = await new_customer(client, system)
        before = await settled(client, system)
        queue = system.projection_queues()[0]  # partitioned: the first partition's
        headers: dict[str, int | str] = {"partition": "0of4"} if system.partitions > 1 else {}
        for body in garbage:
            await publish_raw(system.exchange, body, "order.created", headers)

        for _ in range(3):
            await place(client, system, order_for(customer))

        async def counted() -> bool:
            return await count(client, system, customer) == 3

        await eventually(counted, within=10, what="later orders to be counted")
        report = await settled(client, system)
        assert report["poisoned"] - before["poisoned"] == len(garbage)

    dead = await drain(f"{queue}.dlq")
    assert sorted(m.body for m in dead) == sorted(garbage)
    assert all(m.headers.get("x-poison-reason") for m in dead)


def test_verify_finds_the_read_model_exact(system: System) -> None:
    done = ordersystem("verify", "orders-count", env=system.projector_env(), timeout=60)

    assert done.returncode == 0, done.stderr
    assert ": exact:" in done.stdout
