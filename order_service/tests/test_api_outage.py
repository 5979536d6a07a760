"""A customer service that is slow, failing or gone: a fast 503 and nothing stored."""

from __future__ import annotations

import time

import pytest

from order_service.tests.conftest import ORDER, Client, stored_events
from servicekit.postgres import PostgresSettings
from tests.peers import ScriptedPeer

pytestmark = pytest.mark.integration


async def assert_fast_503_and_nothing_stored(
    client: Client,
    database: PostgresSettings,
) -> None:
    events = stored_events(database)
    started = time.monotonic()

    response = await client.post("/api/v1/orders", json=ORDER)

    assert time.monotonic() - started < 3.0
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "customer_service_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert stored_events(database) == events


async def test_a_hanging_customer_service_gives_a_fast_503(
    client: Client,
    peer: ScriptedPeer,
    database: PostgresSettings,
) -> None:
    peer.hang = True

    await assert_fast_503_and_nothing_stored(client, database)


async def test_a_failing_customer_service_gives_a_503(
    client: Client,
    peer: ScriptedPeer,
    database: PostgresSettings,
) -> None:
    peer.status = 500

    await assert_fast_503_and_nothing_stored(client, database)


async def test_an_open_circuit_answers_without_asking_the_customer_service(
    client: Client,
    peer: ScriptedPeer,
    database: PostgresSettings,
) -> None:
    peer.status = 502
    for _ in range(3):
        await client.post("/api/v1/orders", json=ORDER)
    asked = peer.requests

    await assert_fast_503_and_nothing_stored(client, database)

    assert peer.requests == asked


async def test_with_a_healthy_customer_service_the_order_is_stored(
    client: Client,
    database: PostgresSettings,
) -> None:
    events = stored_events(database)

    response = await client.post("/api/v1/orders", json=ORDER)

    assert response.status_code == 201, response.text
    assert stored_events(database) == events + 1
