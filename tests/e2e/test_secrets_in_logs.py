"""Secrets never reach the logs: every process of the system, run at DEBUG with a database
password, a broker password and a service token set, through successes and failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.broker import rabbitmqctl
from tests.e2e.conftest import System, start_system, wait_for_payment
from tests.support import RUN_ID, Databases, ServiceProcess, ordersystem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PG_PASSWORD = f"pg-secret-{uuid.uuid4().hex}"  # trust auth: any password is let in
AMQP_PASSWORD = f"amqp-secret-{uuid.uuid4().hex}"
TOKEN = f"token-secret-{uuid.uuid4().hex}"
SECRETS = (PG_PASSWORD, AMQP_PASSWORD, TOKEN)


@pytest.fixture
async def broker_user(rabbitmq_up: None) -> AsyncIterator[str]:
    """A broker user of this test's own, with a password only this test knows."""
    user = f"t{RUN_ID}-secrets"
    await rabbitmqctl("add_user", user, AMQP_PASSWORD)
    try:
        await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        yield user
    finally:
        await rabbitmqctl("delete_user", user)


@pytest.fixture
async def system(
    capfd: pytest.CaptureFixture[str],  # first: the processes then write where it captures
    databases: Databases,
    broker_user: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[System]:
    monkeypatch.setenv("POSTGRES_PASSWORD", PG_PASSWORD)
    monkeypatch.setenv("RABBITMQ_URL", f"amqp://{broker_user}:{AMQP_PASSWORD}@127.0.0.1:5672/")
    monkeypatch.setenv("CUSTOMER_SERVICE_TOKEN", TOKEN)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    running = start_system(databases, prefix=f"t{RUN_ID}.secrets", workers=True)
    await running.wait_for_consumer_queues()
    yield running
    running.stop()
    await running.delete_messaging()


def cli(*args: str) -> str:
    done = ordersystem(*args)
    return done.stdout + done.stderr


def test_no_secret_appears_in_any_process_output(
    system: System, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    orders_api, customers_api = system.orders.url, system.customers.url
    body = {"customer_id": 1, "product_name": "Widget", "quantity": 1, "price": "5.00"}
    created = [httpx.post(f"{orders_api}/api/v1/orders", json=body).json()["id"] for _ in range(3)]
    unauthorised = httpx.get(f"{customers_api}/api/v1/customers/1")
    wrong = httpx.get(
        f"{customers_api}/api/v1/customers/1", headers={"Authorization": "Bearer nope"}
    )
    system.customers.stop()  # failures log: the customer service gone, then back
    uncached = {**body, "customer_id": 2}  # customer 1 may still be in the order service's cache
    refused = httpx.post(f"{orders_api}/api/v1/orders", json=uncached)
    system.customers = ServiceProcess("customers", system.customers.env, port=system.customers.port)
    system.customers.start()
    for order_id in created:
        asyncio.run(wait_for_payment(system, order_id))
    monkeypatch.setenv("CUSTOMERS_DB", system.customers_db.dbname)
    monkeypatch.setenv("ORDERS_DB", system.orders_db.dbname)
    commands = cli("verify", "orders-count") + cli("audit", "order", created[0])
    system.stop()

    captured = capfd.readouterr()
    everything = captured.out + captured.err + commands

    assert (unauthorised.status_code, wrong.status_code, refused.status_code) == (401, 401, 503)
    # The processes' own output was captured: the order API's calls to the customer service,
    # made during the test (a relay's start-up lines may come before it, while setting up).
    assert "httpcore.http11: send_request_headers" in everything
    assert "DEBUG" in everything  # at the most talkative level
    for secret in SECRETS:
        assert secret not in everything
