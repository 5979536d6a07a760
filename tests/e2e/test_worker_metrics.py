"""The workers' metrics, scraped from the real processes: each figure driven to a known value.

A system of its own (its counters start at zero, and a test may hold its projector back):
every figure is read from a worker's `/metrics` over HTTP, as Prometheus reads it, and
compared with what the event stores hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.codec import encode
from order_service.application import Orders
from order_service.relay import event_log as order_log
from payment_service.application import Payments
from payment_service.relay import event_log as payment_log
from tests.broker import publish_raw
from tests.e2e.conftest import System, projector_held_back, running_system
from tests.e2e.orders import place_orders
from tests.support import Databases, eventually, free_port, ordersystem

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("rabbitmq_up")]

ORDERS = 12


@pytest.fixture(scope="module")
async def system(databases: Databases) -> AsyncIterator[System]:
    async with running_system(databases) as running:
        yield running


@pytest.fixture(scope="module")
def stores(system: System) -> Iterator[tuple[Orders, Payments]]:
    orders = Orders(env=system.orders_db.eventsourcing_env())
    payments = Payments(env=system.payments_db.eventsourcing_env())
    yield orders, payments
    orders.close()
    payments.close()


def scrape(system: System, worker: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample a worker serves, by name and labels."""
    text = httpx.get(system.workers[worker].metrics_url, timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(system: System, worker: str, name: str, **labels: str) -> float:
    return scrape(system, worker).get((name, frozenset(labels.items())), 0.0)


def public(app: Orders | Payments, log: Any) -> list[Any]:
    return list(log(app).read(after=0, limit=100_000))


async def settled(system: System, stores: tuple[Orders, Payments]) -> tuple[list[Any], list[Any]]:
    """Wait until every public event of both logs is applied where it goes; both logs."""
    orders, payments = stores

    async def done() -> bool:
        order_events, payment_events = public(orders, order_log), public(payments, payment_log)
        return bool(
            payment_events
            and value(
                system, "payment-relay", "ordersystem_relay_published_position", relay="payments"
            )
            == payment_events[-1].position
            and value(
                system, "projector", "ordersystem_read_model_position", read_model="orders_count"
            )
            == order_events[-1].position
            and value(
                system,
                "payment-results",
                "ordersystem_consumer_handled_events_total",
                consumer="payment-results",
            )
            == len(payment_events)
        )

    await eventually(done, within=60, what="every event applied")
    return public(orders, order_log), public(payments, payment_log)


async def test_each_worker_counts_what_it_carried_and_its_lag_returns_to_zero(
    system: System, stores: tuple[Orders, Payments]
) -> None:
    await place_orders(system, ORDERS)
    order_events, payment_events = await settled(system, stores)
    created = [e for e in order_events if e.type == "order.created"]
    assert len(created) == ORDERS
    assert len(payment_events) == ORDERS  # one outcome per order

    relay = scrape(system, "relay")
    assert relay[
        ("ordersystem_relay_published_messages_total", frozenset({("relay", "orders")}))
    ] == len(order_events)
    assert (
        relay[("ordersystem_relay_published_position", frozenset({("relay", "orders")}))]
        == order_events[-1].position
    )
    assert relay[("ordersystem_relay_leading", frozenset({("relay", "orders")}))] == 1
    assert relay[("ordersystem_relay_confirm_seconds_count", frozenset({("relay", "orders")}))] >= 1
    assert (
        value(
            system, "payment-relay", "ordersystem_relay_published_messages_total", relay="payments"
        )
        == ORDERS
    )

    processor_queue = system.messaging_env()["PAYMENT_QUEUE"]
    assert (
        value(system, "payments", "ordersystem_consumer_handled_events_total", consumer="payments")
        == ORDERS
    )
    assert (
        value(system, "payments", "ordersystem_consumer_position", queue=processor_queue)
        == created[-1].position
    )

    for name in ("orders_count", "orders_by_status"):
        labels = {"read_model": name}
        assert value(
            system, "projector", "ordersystem_read_model_applied_events_total", **labels
        ) == len(order_events)
        assert value(
            system, "projector", "ordersystem_read_model_commit_to_visible_seconds_count", **labels
        ) == len(order_events)
        assert (
            value(
                system,
                "projector",
                "ordersystem_read_model_commit_to_visible_seconds_sum",
                **labels,
            )
            > 0
        )
        assert value(system, "projector", "ordersystem_read_model_duplicates_total", **labels) == 0

    async def no_lag() -> bool:
        figures = [
            value(system, "relay", "ordersystem_relay_lag_events", relay="orders"),
            value(system, "relay", "ordersystem_relay_lag_seconds", relay="orders"),
            value(system, "payment-relay", "ordersystem_relay_lag_events", relay="payments"),
        ]
        for worker, queue in (
            ("projector", system.projection_queue),
            ("payments", processor_queue),
            ("payment-results", system.messaging_env()["PAYMENT_RESULTS_QUEUE"]),
        ):
            figures.append(value(system, worker, "ordersystem_consumer_lag_events", queue=queue))
            figures.append(value(system, worker, "ordersystem_consumer_lag_seconds", queue=queue))
        return not any(figures)

    await eventually(no_lag, within=10, what="every lag back to zero")


async def test_a_projector_held_back_shows_its_lag_then_catches_up(
    system: System, stores: tuple[Orders, Payments]
) -> None:
    queue = system.projection_queue
    before = value(
        system,
        "projector",
        "ordersystem_read_model_applied_events_total",
        read_model="orders_count",
    )
    with projector_held_back(system):
        await place_orders(system, 5)
        await eventually(
            lambda: value(system, "projector", "ordersystem_consumer_lag_events", queue=queue) >= 5,
            within=20,
            what="the held-back projector's lag in events",
        )
        await eventually(
            lambda: (
                value(system, "projector", "ordersystem_consumer_lag_seconds", queue=queue) >= 2
            ),
            within=20,
            what="the held-back projector's lag in seconds",
        )
        held = value(
            system,
            "projector",
            "ordersystem_read_model_applied_events_total",
            read_model="orders_count",
        )
        assert held == before  # nothing applied while the lock is held

    order_events, _ = await settled(system, stores)
    await eventually(
        lambda: (
            value(system, "projector", "ordersystem_consumer_lag_events", queue=queue) == 0
            and value(system, "projector", "ordersystem_consumer_lag_seconds", queue=queue) == 0
        ),
        within=20,
        what="the projector's lag back to zero",
    )
    visible = value(
        system,
        "projector",
        "ordersystem_read_model_commit_to_visible_seconds_bucket",
        read_model="orders_count",
        le="1.0",
    )
    total = value(
        system,
        "projector",
        "ordersystem_read_model_commit_to_visible_seconds_count",
        read_model="orders_count",
    )
    assert total == len(order_events)
    assert total - visible >= 5  # the held-back events took longer than a second to show


async def test_a_duplicate_and_a_poison_message_are_counted(
    system: System, stores: tuple[Orders, Payments]
) -> None:
    orders, _ = stores
    await settled(system, stores)
    queue = system.projection_queue
    last = public(orders, order_log)[-1]
    duplicates = value(
        system, "projector", "ordersystem_read_model_duplicates_total", read_model="orders_count"
    )
    poison = value(
        system, "projector", "ordersystem_consumer_dead_lettered_messages_total", queue=queue
    )

    await publish_raw(system.exchange, encode(last), last.type)  # once more
    await publish_raw(system.exchange, b"{not json", "order.created")

    await eventually(
        lambda: (
            value(
                system,
                "projector",
                "ordersystem_read_model_duplicates_total",
                read_model="orders_count",
            )
            == duplicates + 1
            and value(
                system,
                "projector",
                "ordersystem_consumer_dead_lettered_messages_total",
                queue=queue,
            )
            == poison + 1
        ),
        within=20,
        what="one duplicate and one poison message counted",
    )


def status_env(system: System) -> dict[str, str]:
    """Where this system's processes are, as `ordersystem status` reads it: the settings."""
    ports = {
        "ORDER_API_PORT": system.orders.port,
        "CUSTOMER_API_PORT": system.customers.port,
        "PAYMENT_API_PORT": system.payments.port,
        "ORDERS_RELAY_METRICS_PORT": system.workers["relay"].metrics_port,
        "PAYMENTS_RELAY_METRICS_PORT": system.workers["payment-relay"].metrics_port,
        "PAYMENT_PROCESSOR_METRICS_PORT": system.workers["payments"].metrics_port,
        "PAYMENT_RESULTS_METRICS_PORT": system.workers["payment-results"].metrics_port,
        "PROJECTOR_METRICS_PORT": system.workers["projector"].metrics_port,
    }
    return {name: str(port) for name, port in ports.items()}


def status_rows(output: str) -> dict[str, list[str]]:
    """The table's rows by process: its cells, stripped."""
    found = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if len(cells) == 6 and cells[0] and cells[0] != "process":
            found[cells[0]] = cells[1:]
    return found


async def test_status_once_shows_every_process_its_position_and_no_lag(
    system: System, stores: tuple[Orders, Payments]
) -> None:
    order_events, payment_events = await settled(system, stores)

    done = await asyncio.to_thread(
        ordersystem, "status", "--once", "--interval", "0.3", env=status_env(system)
    )

    assert done.returncode == 0, done.stdout + done.stderr
    table = status_rows(done.stdout)
    assert set(table) == {
        "customers API",
        "orders API",
        "payments API",
        "relay orders",
        "relay payments",
        "consume order-created",
        "consume payment-results",
        "projector",
    }
    assert {table[api][0] for api in ("customers API", "orders API", "payments API")} == {"ready"}
    assert table["relay orders"][:4] == ["leading", f"{order_events[-1].position:,}", "0", "0.0"]
    assert table["relay payments"][:2] == ["leading", f"{payment_events[-1].position:,}"]
    assert table["projector"][:4] == ["up", f"{order_events[-1].position:,}", "0", "0.0"]
    assert table["consume payment-results"][:2] == ["up", f"{payment_events[-1].position:,}"]


async def test_status_once_fails_when_a_process_is_down(system: System) -> None:
    env = {**status_env(system), "PROJECTOR_METRICS_PORT": str(free_port())}  # nobody there

    done = await asyncio.to_thread(ordersystem, "status", "--once", "--interval", "0.1", env=env)

    assert done.returncode == 1
    assert status_rows(done.stdout)["projector"][0] == "down"
