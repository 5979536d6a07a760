"""The order API's request headers: idempotency keys and correlation ids."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import psycopg
import pytest

from tests.e2e.conftest import System
from tests.e2e.orders import WIDGET, post_order

pytestmark = pytest.mark.e2e


def test_an_idempotent_replay_returns_the_same_order_with_200(system: System) -> None:
    key = str(uuid.uuid4())
    first = post_order(system, WIDGET, **{"Idempotency-Key": key})
    orders = system.stored_orders()

    again = post_order(system, WIDGET, **{"Idempotency-Key": key})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert system.stored_orders() == orders


def test_an_idempotency_key_reused_with_another_body_is_a_422(system: System) -> None:
    key = str(uuid.uuid4())
    post_order(system, WIDGET, **{"Idempotency-Key": key})

    response = post_order(system, {**WIDGET, "quantity": 4}, **{"Idempotency-Key": key})

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


def test_concurrent_duplicates_with_one_key_create_exactly_one_order(system: System) -> None:
    key = str(uuid.uuid4())
    orders = system.stored_orders()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
            headers = {"Idempotency-Key": key}
            return await asyncio.gather(
                *(client.post("/api/v1/orders", json=WIDGET, headers=headers) for _ in range(20))
            )

    responses = asyncio.run(burst())

    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert system.stored_orders() == orders + 1


def test_the_clients_correlation_id_is_echoed_and_stored_with_the_event(system: System) -> None:
    response = post_order(system, WIDGET, **{"X-Correlation-ID": "trace-abc-123"})

    assert response.headers["x-correlation-id"] == "trace-abc-123"
    with psycopg.connect(system.orders_db.conninfo()) as conn:
        row = conn.execute(
            "SELECT state FROM orders_events WHERE originator_id = %s", (response.json()["id"],)
        ).fetchone()
    assert row is not None
    assert json.loads(bytes(row[0]))["correlation_id"] == "trace-abc-123"


def test_a_correlation_id_is_made_up_when_the_client_sends_none(system: System) -> None:
    response = post_order(system, WIDGET)

    assert uuid.UUID(response.headers["x-correlation-id"])
