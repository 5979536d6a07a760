"""The order lifecycle over HTTP: transitions, preconditions, races, history, events."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System, wait_for_payment

pytestmark = pytest.mark.e2e
Client = httpx.AsyncClient

ORDER = {"customer_id": 5, "product_name": "Desk", "quantity": 1, "price": "250.00"}


async def create(client: Client, system: System) -> dict[str, Any]:
    """A new order, once its payment went through (only a paid order can be shipped)."""
    response = await client.post(f"{system.orders.url}/api/v1/orders", json=ORDER)
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    await wait_for_payment(system, body["id"])
    return body


async def act(
    client: Client, system: System, order_id: str, action: str, **kwargs: Any
) -> httpx.Response:
    return await client.post(f"{system.orders.url}/api/v1/orders/{order_id}/{action}", **kwargs)


async def test_confirm_then_ship_succeed_and_cancel_after_ship_is_a_409(
    client: Client, system: System
) -> None:
    order = await create(client, system)

    confirmed = await act(client, system, order["id"], "confirm")
    shipped = await act(client, system, order["id"], "ship")
    cancelled = await act(client, system, order["id"], "cancel", json={"reason": "too late"})

    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
    assert (shipped.status_code, shipped.json()["status"], shipped.headers["etag"]) == (
        200,
        "shipped",
        '"4"',
    )
    assert cancelled.status_code == 409
    assert cancelled.json()["code"] == "invalid_transition"


async def test_if_match_must_name_the_current_version(client: Client, system: System) -> None:
    order = await create(client, system)

    stale = await act(client, system, order["id"], "confirm", headers={"If-Match": '"7"'})
    # placed, paid: version 2
    matching = await act(client, system, order["id"], "confirm", headers={"If-Match": '"2"'})
    again = await act(client, system, order["id"], "ship", headers={"If-Match": '"2"'})

    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert stale.headers["etag"] == '"2"'
    assert matching.status_code == 200
    assert again.status_code == 412


async def test_a_cancellation_records_its_reason(client: Client, system: System) -> None:
    order = await create(client, system)

    cancelled = await act(client, system, order["id"], "cancel", json={"reason": "changed my mind"})
    bare = await act(client, system, (await create(client, system))["id"], "cancel")

    assert cancelled.json()["cancellation_reason"] == "changed my mind"
    assert bare.json()["cancellation_reason"] == "requested"


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        ("/api/v1/orders/not-a-uuid/confirm", {}, 404),
        ("/api/v1/orders/00000000-0000-0000-0000-000000000000/ship", {}, 404),
        ("CANCEL", {"json": {"reason": ""}}, 422),
        ("CANCEL", {"content": b"{not json"}, 400),
        ("CANCEL", {"content": b"\t", "headers": {"content-type": "application/json"}}, 400),
        ("CANCEL", {"content": b" \r\n", "headers": {"content-type": "application/json"}}, 400),
    ],
)
async def test_bad_transition_requests_are_problems(
    client: Client, system: System, path: str, kwargs: dict[str, Any], status: int
) -> None:
    if path == "CANCEL":
        path = f"/api/v1/orders/{(await create(client, system))['id']}/cancel"

    response = await client.post(system.orders.url + path, **kwargs)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_concurrent_transitions_on_one_order_never_lose_an_update(
    client: Client, system: System
) -> None:
    order = await create(client, system)
    url = f"{system.orders.url}/api/v1/orders/{order['id']}"
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


async def test_the_history_lists_every_event_and_version_1_shows_pending(
    client: Client, system: System
) -> None:
    order = await create(client, system)
    await act(client, system, order["id"], "confirm", headers={"X-Correlation-ID": "audit-1"})
    await act(client, system, order["id"], "ship")
    url = f"{system.orders.url}/api/v1/orders/{order['id']}"

    history = (await client.get(f"{url}/events")).json()
    first = (await client.get(f"{url}?version=1")).json()

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
    assert (await client.get(url)).json()["status"] == "shipped"


async def test_transitions_are_in_the_feed_and_the_list_at_once(
    client: Client, system: System
) -> None:
    order = await create(client, system)
    await act(client, system, order["id"], "confirm")
    await act(client, system, order["id"], "cancel", json={"reason": "no stock"})

    listed = (await client.get(f"{system.orders.url}/api/v1/orders?customer_id=5&limit=1")).json()
    feed = (await client.get(f"{system.orders.url}/api/v1/events?limit=5000")).json()
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
