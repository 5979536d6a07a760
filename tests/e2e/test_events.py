"""Orders become messages on the exchange, and the feed serves the very same envelopes."""

from __future__ import annotations

import itertools
import json
import uuid

import httpx
import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

ORDER = {"customer_id": 4, "product_name": "Lamp", "quantity": 2, "price": "30.00"}


def feed(system: System, after: int = 0, limit: int = 5000) -> list[dict[str, object]]:
    response = httpx.get(f"{system.orders.url}/api/v1/events?after={after}&limit={limit}")
    assert response.status_code == 200
    items: list[dict[str, object]] = response.json()
    return items


async def test_every_order_is_one_message_and_the_feed_serves_the_same_envelopes(
    system: System,
) -> None:
    assert system.topology is not None
    async with httpx.AsyncClient(base_url=system.orders.url) as client:
        created = [
            (
                await client.post(
                    "/api/v1/orders", json=ORDER, headers={"X-Correlation-ID": f"e2e-{n}"}
                )
            ).json()
            for n in range(5)
        ]
        stream = (await client.get("/api/v1/events?after=0&limit=5000")).json()

    received = await system.topology.collect(
        lambda got: bool(got) and got[-1].position == stream[-1]["position"]
    )

    bodies = [json.loads(d.body) for d in received]
    assert bodies == stream  # the whole stream so far, identical envelopes
    chain = [(b["previous_position"], b["position"]) for b in bodies]
    assert chain == list(
        zip([None] + [p for _, p in chain[:-1]], [p for _, p in chain], strict=True)
    )
    ours = [b for b in bodies if b["data"]["order_id"] in {o["id"] for o in created}]
    assert [b["data"]["order_id"] for b in ours] == [o["id"] for o in created]  # once each
    assert [b["correlation_id"] for b in ours] == [f"e2e-{n}" for n in range(5)]
    assert {b["type"] for b in ours} == {"order.created"}
    assert ours[0]["data"] == {
        "order_id": created[0]["id"],
        "customer_id": 4,
        "product_name": "Lamp",
        "quantity": 2,
        "price": "30.00",
        "status": "pending",
        "currency": "EUR",
        "total": "60.00",
    }
    assert all(uuid.UUID(b["id"]) for b in ours)


def test_the_feed_pages_with_a_link_and_chains_across_pages(system: System) -> None:
    for _ in range(3):
        httpx.post(f"{system.orders.url}/api/v1/orders", json=ORDER)
    everything = feed(system)

    first = httpx.get(f"{system.orders.url}/api/v1/events?after=0&limit=2")
    second = httpx.get(system.orders.url + first.links["next"]["url"])

    assert first.json() + second.json() == everything[:4]
    assert second.json()[0]["previous_position"] == first.json()[-1]["position"]


@pytest.mark.parametrize(
    "query",
    [
        "after=-1",
        "after=x",
        "limit=0",
        "limit=5001",
        "partitions=0",
        "partitions=257",
        "partitions=x",
        "partition=4of4",
        "partition=2",
        "partition=2of0",
        "partition=%ff",
        "partition=2of4&partitions=4",
    ],
)
def test_a_bad_feed_query_is_a_422(system: System, query: str) -> None:
    response = httpx.get(f"{system.orders.url}/api/v1/events?{query}")

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_readiness_reports_the_relay_lag(system: System) -> None:
    body = httpx.get(f"{system.orders.url}/health/ready").json()

    assert set(body["checks"]["relay"]) == {"published_position", "lag"}


def test_the_feed_serves_one_partition_chained_within_it_and_links_the_next_page(
    system: System,
) -> None:
    for customer_id in (3, 4, 5, 3, 4):  # partitions 1, 0, 0 of two (other tests count 1 and 2)
        httpx.post(f"{system.orders.url}/api/v1/orders", json={**ORDER, "customer_id": customer_id})
    everything = feed(system)
    tagged = httpx.get(f"{system.orders.url}/api/v1/events?partitions=2&limit=5000").json()

    assert [e["position"] for e in tagged] == [e["position"] for e in everything]
    assert {e["partition"] for e in tagged} == {"0of2", "1of2"}
    for partition in ("0of2", "1of2"):
        mine = [e for e in tagged if e["partition"] == partition]
        first = httpx.get(f"{system.orders.url}/api/v1/events?partition={partition}&limit=2")
        second = httpx.get(system.orders.url + first.links["next"]["url"])
        assert first.json() + second.json() == mine[:4]
        chain = [(e["previous_position"], e["position"]) for e in mine]
        assert chain[1:] == [(a[1], b[1]) for a, b in itertools.pairwise(chain)]
    assert "partition" not in everything[0]  # unpartitioned: the field is left out
