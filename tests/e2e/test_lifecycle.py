"""The order lifecycle over HTTP: transitions, preconditions, races, history, events."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System, wait_for_payment

pytestmark = pytest.mark.e2e

ORDER = {"customer_id": 5, "product_name": "Desk", "quantity": 1, "price": "250.00"}


def create(system: System) -> dict[str, Any]:
    """A new order, once its payment went through (only a paid order can be shipped)."""
    response = httpx.post(f"{system.orders.url}/api/v1/orders", json=ORDER)
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    wait_for_payment(system, body["id"])
    return body


def act(system: System, order_id: str, action: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{system.orders.url}/api/v1/orders/{order_id}/{action}", **kwargs)


def test_confirm_then_ship_succeed_and_cancel_after_ship_is_a_409(system: System) -> None:
    order = create(system)

    confirmed = act(system, order["id"], "confirm")
    shipped = act(system, order["id"], "ship")
    cancelled = act(system, order["id"], "cancel", json={"reason": "too late"})

    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
    assert (shipped.status_code, shipped.json()["status"], shipped.headers["etag"]) == (
        200,
        "shipped",
        '"4"',
    )
    assert cancelled.status_code == 409
    assert cancelled.json()["code"] == "invalid_transition"


def test_if_match_must_name_the_current_version(system: System) -> None:
    order = create(system)

    stale = act(system, order["id"], "confirm", headers={"If-Match": '"7"'})
    matching = act(system, order["id"], "confirm", headers={"If-Match": '"2"'})  # placed, paid
    again = act(system, order["id"], "ship", headers={"If-Match": '"2"'})

    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert stale.headers["etag"] == '"2"'
    assert matching.status_code == 200
    assert again.status_code == 412


def test_a_cancellation_records_its_reason(system: System) -> None:
    order = create(system)

    cancelled = act(system, order["id"], "cancel", json={"reason": "changed my mind"})
    bare = act(system, create(system)["id"], "cancel")

    assert cancelled.json()["cancellation_reason"] == "changed my mind"
    assert bare.json()["cancellation_reason"] == "requested"


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        ("/api/v1/orders/not-a-uuid/confirm", {}, 404),
        ("/api/v1/orders/00000000-0000-0000-0000-000000000000/ship", {}, 404),
        ("CANCEL", {"json": {"reason": ""}}, 422),
        ("CANCEL", {"content": b"{not json"}, 400),
    ],
)
def test_bad_transition_requests_are_problems(
    system: System, path: str, kwargs: dict[str, Any], status: int
) -> None:
    if path == "CANCEL":
        path = f"/api/v1/orders/{create(system)['id']}/cancel"

    response = httpx.post(system.orders.url + path, **kwargs)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_concurrent_transitions_on_one_order_never_lose_an_update(system: System) -> None:
    order = create(system)
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        url = f"/api/v1/orders/{order['id']}"
        responses = await asyncio.gather(
            *(client.post(f"{url}/confirm") for _ in range(5)),
            *(client.post(f"{url}/cancel", json={"reason": "race"}) for _ in range(5)),
        )
        final = (await client.get(url)).json()
        history = (await client.get(f"{url}/events")).json()

    winners = [r for r in responses if r.status_code == 200]
    assert {r.status_code for r in responses} <= {200, 409}
    assert len(history) == 2 + len(winners)  # placed, paid, and one event per success
    assert final["version"] == len(history)
    assert final["status"] == history[-1]["status"]


def test_the_history_lists_every_event_and_version_1_shows_pending(system: System) -> None:
    order = create(system)
    act(system, order["id"], "confirm", headers={"X-Correlation-ID": "audit-1"})
    act(system, order["id"], "ship")
    url = f"{system.orders.url}/api/v1/orders/{order['id']}"

    history = httpx.get(f"{url}/events").json()
    first = httpx.get(f"{url}?version=1").json()

    assert [(e["version"], e["type"], e["status"]) for e in history] == [
        (1, "Placed", "pending"),
        (2, "Paid", "pending"),
        (3, "Confirmed", "confirmed"),
        (4, "Shipped", "shipped"),
    ]
    assert history[1]["correlation_id"] == history[0]["correlation_id"]  # caused by the POST
    assert history[2]["correlation_id"] == "audit-1"
    assert history[2]["data"] == {"from_status": "pending"}
    assert first["status"] == "pending"
    assert httpx.get(url).json()["status"] == "shipped"


def test_transitions_are_in_the_feed_and_the_list_at_once(system: System) -> None:
    order = create(system)
    act(system, order["id"], "confirm")
    act(system, order["id"], "cancel", json={"reason": "no stock"})

    listed = httpx.get(f"{system.orders.url}/api/v1/orders?customer_id=5&limit=1").json()
    feed = httpx.get(f"{system.orders.url}/api/v1/events?limit=5000").json()
    ours = [e for e in feed if e["data"]["order_id"] == order["id"]]

    assert listed[0]["status"] == "cancelled"
    assert [e["type"] for e in ours] == ["order.created", "order.confirmed", "order.cancelled"]
    assert ours[2]["data"] == {
        "order_id": order["id"],
        "from_status": "confirmed",
        "status": "cancelled",
        "reason": "no stock",
    }


def test_the_history_of_an_unknown_order_is_a_404(system: System) -> None:
    response = httpx.get(
        f"{system.orders.url}/api/v1/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}/events"
    )

    assert response.status_code == 404
