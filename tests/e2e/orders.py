"""A valid new order and how to post it: what the order API's tests share."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import System

WIDGET: dict[str, Any] = {
    "customer_id": 1,
    "product_name": "Widget",
    "quantity": 3,
    "price": "19.99",
}


def post_order(system: System, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{system.orders.url}/api/v1/orders", json=body, headers=headers)


async def place_orders(system: System, count: int, body: Any = WIDGET) -> None:
    """Place `count` orders of `body`, one after another; each must be created."""
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:
        for _ in range(count):
            response = await client.post("/api/v1/orders", json=body)
            assert response.status_code == 201, response.text
