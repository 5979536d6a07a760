"""The customer service stopped and started again, with real processes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import System, start_system
from tests.support import Databases, ServiceProcess

pytestmark = pytest.mark.e2e

ORDER = {"customer_id": 2, "product_name": "Widget", "quantity": 1, "price": "5.00"}


@pytest.fixture
def own_system(databases: Databases) -> Iterator[System]:
    running = start_system(databases)
    yield running
    running.stop()


def place(system: System) -> httpx.Response:
    return httpx.post(f"{system.orders.url}/api/v1/orders", json=ORDER, timeout=10)


def breaker_state(system: System) -> float:
    """The order API's breaker in front of the customer service, as a scrape shows it."""
    text = httpx.get(f"{system.orders.url}/metrics", timeout=5).text
    states = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ordersystem_circuit_breaker_state"
        and sample.labels.get("breaker") == "customer-service"
    ]
    assert len(states) == 1
    return states[0]


def test_orders_fail_fast_while_the_customer_service_is_down_and_recover_after(
    own_system: System,
) -> None:
    own_system.customers.stop()
    orders = own_system.stored_orders()

    started = time.monotonic()
    answers = [place(own_system) for _ in range(8)]

    assert {r.status_code for r in answers} == {503}
    assert time.monotonic() - started < 8 * 3.0
    assert all(r.json()["code"] == "customer_service_unavailable" for r in answers)
    assert own_system.stored_orders() == orders
    assert breaker_state(own_system) == 2  # open: the order API fails fast

    restarted = ServiceProcess(
        "customers", own_system.customers.env, port=own_system.customers.port
    )
    own_system.customers = restarted.start()
    deadline = time.monotonic() + 10
    while (response := place(own_system)).status_code != 201:
        assert response.status_code == 503
        assert time.monotonic() < deadline, "orders did not recover within 10 s"
        time.sleep(0.2)
    assert own_system.stored_orders() == orders + 1
    assert breaker_state(own_system) == 0  # closed again by the call that went through
