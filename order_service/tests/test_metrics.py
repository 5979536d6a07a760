"""The order API's metrics: n orders placed are n requests counted, n events appended, and
their saves in group-commit batches, all read from its own /metrics."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from order_service.tests.conftest import ORDER, Client

pytestmark = pytest.mark.integration

Labels = dict[str, str]


async def scrape(client: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics, by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["content-type"].count("charset") == 1
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_placed_orders_are_counted_as_requests_appends_and_commit_batches(
    client: Client,
) -> None:
    posted = {"method": "POST", "route": "/api/v1/orders", "service": "orders"}
    before = await scrape(client)

    answers = await asyncio.gather(*(client.post("/api/v1/orders", json=ORDER) for _ in range(7)))
    refused = await client.post("/api/v1/orders", json={**ORDER, "quantity": 0})
    after = await scrape(client)

    assert [answer.status_code for answer in answers] == [201] * 7
    assert refused.status_code == 422

    def change(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert change("http_requests_total", **posted, status="201") == 7
    assert change("http_requests_total", **posted, status="422") == 1
    assert change("http_request_duration_seconds_count", **posted) == 8
    assert change("http_request_duration_seconds_bucket", **posted, le="+Inf") == 8
    assert change("ordersystem_event_store_appended_events_total", store="orders_events") == 7
    batches = change("ordersystem_group_commit_batch_size_count", application="orders")
    assert 1 <= batches <= 7
    assert change("ordersystem_group_commit_batch_size_sum", application="orders") == 7


async def test_the_metrics_endpoint_counts_no_scrape_of_its_own(client: Client) -> None:
    await scrape(client)
    samples = await scrape(client)

    assert not any(
        name == "http_requests_total" and ("route", "/metrics") in labels
        for name, labels in samples
    )
