"""Creating an order over HTTP: what is accepted, and what is refused storing nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System
from tests.e2e.orders import WIDGET, post_order

pytestmark = pytest.mark.e2e


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
