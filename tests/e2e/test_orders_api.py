"""The order service's HTTP contract, black-box against real processes."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

WIDGET: dict[str, Any] = {
    "customer_id": 1,
    "product_name": "Widget",
    "quantity": 3,
    "price": "19.99",
}


def post_order(system: System, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{system.orders.url}/api/v1/orders", json=body, headers=headers)


def new_customer(system: System) -> int:
    body = {"customer_name": "Pagination Tester", "address": "Somewhere"}
    created = httpx.post(f"{system.customers.url}/api/v1/customers", json=body).json()
    customer_id: int = created["id"]
    return customer_id


def test_an_order_is_created_with_its_customer_embedded(system: System) -> None:
    response = post_order(system, WIDGET)

    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert uuid.UUID(order["id"])
    assert (order["price"], order["total"], order["status"]) == ("19.99", "59.97", "pending")
    assert order["version"] == 1
    assert order["customer"] == {
        "id": 1,
        "customer_name": "Ada Lovelace",
        "address": "12 St James's Square, London",
        "orders_count": 0,
    }


def test_a_body_wrapped_in_order_is_accepted(system: System) -> None:
    response = post_order(system, {"order": {**WIDGET, "status": "confirmed"}})

    assert response.status_code == 201
    assert response.json()["status"] == "confirmed"


def test_a_float_price_keeps_its_exact_decimal_value(system: System) -> None:
    content = b'{"customer_id": 2, "product_name": "Pen", "quantity": 3, "price": 0.1}'

    response = httpx.post(f"{system.orders.url}/api/v1/orders", content=content)

    assert (response.json()["price"], response.json()["total"]) == ("0.10", "0.30")


def test_malformed_json_is_a_400_problem_and_stores_nothing(system: System) -> None:
    orders = system.stored_orders()

    response = httpx.post(f"{system.orders.url}/api/v1/orders", content=b'{"customer_id": 1,')

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "malformed_json"
    assert system.stored_orders() == orders


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": 2.5}, "quantity"),
        ({"price": "-1"}, "price"),
        ({"price": "1.999"}, "price"),
        ({"price": "free"}, "price"),
        ({"product_name": ""}, "product_name"),
        ({"product_name": "p" * 201}, "product_name"),
        ({"status": "lost"}, "status"),
        ({"customer_id": "one"}, "customer_id"),
    ],
)
def test_a_rule_break_is_a_422_naming_the_field_and_stores_nothing(
    system: System, change: dict[str, Any], field: str
) -> None:
    orders = system.stored_orders()

    response = post_order(system, {**WIDGET, **change})

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert [e["field"] for e in problem["errors"]] == [field]
    assert system.stored_orders() == orders


@pytest.mark.parametrize("status", ["shipped", "delivered", "cancelled"])
def test_an_order_cannot_be_created_shipped_delivered_or_cancelled(
    system: System, status: str
) -> None:
    # It would never be paid (5,000 fails the payment) and yet stay shipped or delivered.
    orders = system.stored_orders()

    response = post_order(system, {**WIDGET, "price": "5000.00", "status": status})

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_status"
    assert [e["field"] for e in problem["errors"]] == ["status"]
    assert system.stored_orders() == orders


def test_an_order_may_be_created_confirmed_and_still_waits_for_its_payment(
    system: System,
) -> None:
    response = post_order(system, {**WIDGET, "status": "confirmed"})

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["payment_status"]) == (
        "confirmed",
        "pending",
    )


def test_an_unknown_customer_is_a_422_and_stores_nothing(system: System) -> None:
    orders = system.stored_orders()

    response = post_order(system, {**WIDGET, "customer_id": 987654})

    assert response.status_code == 422
    assert response.json()["code"] == "customer_not_found"
    assert system.stored_orders() == orders


def test_an_order_reads_back_with_an_etag_and_at_a_version(system: System) -> None:
    created = post_order(system, WIDGET).json()
    url = f"{system.orders.url}/api/v1/orders/{created['id']}"

    current, at_one = httpx.get(url), httpx.get(url + "?version=1")
    beyond = httpx.get(url + f"?version={current.json()['version'] + 5}")

    assert current.status_code == 200
    assert current.headers["etag"] == f'"{current.json()["version"]}"'
    assert at_one.json() == {k: v for k, v in created.items() if k != "customer"}
    assert beyond.status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/api/v1/orders/{uuid.uuid4()}", 404),
        ("/api/v1/orders/not-a-uuid", 404),
        ("/api/v1/orders/1%27%20OR%201=1", 404),
        (f"/api/v1/orders/{uuid.uuid4()}?version=zero", 422),
        ("/api/v1/orders?customer_id=abc", 422),
        ("/api/v1/orders?customer_id=0", 422),
        ("/api/v1/orders?limit=0", 422),
        ("/api/v1/orders?limit=501", 422),
        ("/api/v1/orders?cursor=bogus", 422),
    ],
)
def test_bad_reads_are_problems_never_500s(system: System, path: str, status: int) -> None:
    response = httpx.get(system.orders.url + path)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_an_order_is_listed_as_soon_as_its_post_returned(system: System) -> None:
    for _ in range(5):
        created = post_order(system, {**WIDGET, "customer_id": 3}).json()

        listed = httpx.get(f"{system.orders.url}/api/v1/orders?customer_id=3&limit=1").json()

        assert [o["id"] for o in listed] == [created["id"]]


def test_orders_are_listed_newest_first_in_linked_pages(system: System) -> None:
    customer_id = new_customer(system)
    created = [
        post_order(system, {**WIDGET, "customer_id": customer_id}).json()["id"] for _ in range(7)
    ]

    url: str | None = f"{system.orders.url}/api/v1/orders?customer_id={customer_id}&limit=3"
    pages: list[list[str]] = []
    while url:
        response = httpx.get(url)
        pages.append([o["id"] for o in response.json()])
        url = (
            system.orders.url + response.links["next"]["url"] if "next" in response.links else None
        )

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == created[::-1]


def test_a_customer_without_orders_lists_nothing(system: System) -> None:
    response = httpx.get(f"{system.orders.url}/api/v1/orders?customer_id=424242")

    assert (response.status_code, response.json()) == (200, [])


def test_listing_without_a_customer_lists_all_orders(system: System) -> None:
    post_order(system, {**WIDGET, "customer_id": 4})
    post_order(system, {**WIDGET, "customer_id": 5})

    listed = httpx.get(f"{system.orders.url}/api/v1/orders?limit=2").json()

    assert [o["customer_id"] for o in listed] == [5, 4]


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


@pytest.mark.parametrize(
    "name",
    [
        "'; DROP TABLE orders_events; --",
        "Robert'); DELETE FROM order_summaries;--",
        '{"$gt": ""}',
        "</script><script>alert(1)</script>",
        "emoji \U0001f680 and \u00e9\u00e8 and \u4e2d\u6587",
        'back\\slash and "quotes"',
    ],
)
def test_injection_strings_are_stored_and_returned_verbatim(system: System, name: str) -> None:
    created = post_order(system, {**WIDGET, "product_name": name})

    read = httpx.get(f"{system.orders.url}/api/v1/orders/{created.json()['id']}")

    assert created.status_code == 201
    assert read.json()["product_name"] == name


def test_a_nul_character_is_a_422_not_a_500(system: System) -> None:
    orders = system.stored_orders()

    response = post_order(system, {**WIDGET, "product_name": "bad\u0000name"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "product_name"
    assert system.stored_orders() == orders


def test_an_oversized_body_is_a_413_problem(system: System) -> None:
    body = {**WIDGET, "product_name": "x" * 70_000}

    response = post_order(system, body)

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661\u0662", "\uff11"])  # ², Arabic 12, wide 1
def test_digits_that_are_not_ascii_are_refused_not_a_500(system: System, digits: str) -> None:
    listed = httpx.get(f"{system.orders.url}/api/v1/orders", params={"customer_id": digits})
    customer = httpx.get(f"{system.customers.url}/api/v1/customers/{digits}")
    paged = httpx.get(f"{system.orders.url}/api/v1/orders", params={"limit": digits})

    assert (listed.status_code, customer.status_code, paged.status_code) == (422, 404, 422)
