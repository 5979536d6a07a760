"""The customer service's HTTP contract, black-box."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e


def test_the_five_predefined_customers_exist(system: System) -> None:
    for customer_id in range(1, 6):
        response = httpx.get(f"{system.customers.url}/api/v1/customers/{customer_id}")

        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"id", "customer_name", "address", "orders_count"}
        assert body["id"] == customer_id
        assert isinstance(body["orders_count"], int)  # counted by the projection


@pytest.mark.parametrize("customer_id", ["999999", "abc", "-1", "99999999999999999999999"])
def test_an_unknown_or_malformed_customer_is_a_404_problem(
    system: System, customer_id: str
) -> None:
    response = httpx.get(f"{system.customers.url}/api/v1/customers/{customer_id}")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "customer_not_found"


def test_a_customer_is_created_with_a_location(system: System) -> None:
    body = {"customer_name": "Barbara Liskov", "address": "32 Vassar St, Cambridge"}

    response = httpx.post(f"{system.customers.url}/api/v1/customers", json=body)

    assert response.status_code == 201
    created = response.json()
    assert created["orders_count"] == 0
    assert response.headers["location"] == f"/api/v1/customers/{created['id']}"
    fetched = httpx.get(system.customers.url + response.headers["location"]).json()
    assert fetched == created


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'{"customer_name": "x",', 400),
        (b'{"customer_name": "", "address": "y"}', 422),
        (b'{"customer_name": "x"}', 422),
        (b"[]", 422),
        (b'{"customer_name": "x", "address": "' + b"a" * 501 + b'"}', 422),
    ],
)
def test_a_bad_customer_body_is_refused_with_a_problem(
    system: System, content: bytes, status: int
) -> None:
    response = httpx.post(f"{system.customers.url}/api/v1/customers", content=content)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_customers_are_paginated_with_a_link_header(system: System) -> None:
    url: str | None = f"{system.customers.url}/api/v1/customers?limit=2"
    ids: list[int] = []
    while url:
        response = httpx.get(url)
        assert response.status_code == 200
        ids += [c["id"] for c in response.json()]
        url = (
            system.customers.url + response.links["next"]["url"]
            if "next" in response.links
            else None
        )

    assert ids[:5] == [1, 2, 3, 4, 5]
    assert ids == sorted(set(ids))


def test_readiness_reports_the_database(system: System) -> None:
    response = httpx.get(f"{system.customers.url}/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["postgres"] == "ok"


def test_a_nul_character_in_a_customer_is_a_422(system: System) -> None:
    body = {"customer_name": "Nul\u0000Name", "address": "Somewhere"}

    response = httpx.post(f"{system.customers.url}/api/v1/customers", json=body)

    assert response.status_code == 422
