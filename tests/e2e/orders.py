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
