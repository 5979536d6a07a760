"""Reading and listing orders over HTTP: versions, pages, and bad reads as problems."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import System
from tests.e2e.orders import WIDGET, post_order

pytestmark = pytest.mark.e2e


def new_customer(system: System) -> int:
    body = {"customer_name": "Pagination Tester", "address": "Somewhere"}
    created = httpx.post(f"{system.customers.url}/api/v1/customers", json=body).json()
    customer_id: int = created["id"]
    return customer_id


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


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661\u0662", "\uff11"])  # ², Arabic 12, wide 1
def test_digits_that_are_not_ascii_are_refused_not_a_500(system: System, digits: str) -> None:
    listed = httpx.get(f"{system.orders.url}/api/v1/orders", params={"customer_id": digits})
    customer = httpx.get(f"{system.customers.url}/api/v1/customers/{digits}")
    paged = httpx.get(f"{system.orders.url}/api/v1/orders", params={"limit": digits})

    assert (listed.status_code, customer.status_code, paged.status_code) == (422, 404, 422)
