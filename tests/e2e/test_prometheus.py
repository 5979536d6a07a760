"""A real Prometheus scraping every process of a running system: the figures, through PromQL.

The system is this module's own, so its counters start at zero. Prometheus scrapes the three
APIs and the five workers every half second, from a scrape config generated for their ports.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from order_service.application import Orders
from order_service.relay import event_log
from tests.e2e.conftest import System, projector_held_back, running_system
from tests.e2e.orders import place_orders
from tests.prometheus import Prometheus, prometheus_finding
from tests.support import ROOT, Databases, eventually, require

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("rabbitmq_up")]

ORDERS = 20


@pytest.fixture(scope="module")
async def system(databases: Databases) -> AsyncIterator[System]:
    require(prometheus_finding())
    async with running_system(databases) as running:
        yield running


def targets(system: System) -> dict[str, str]:
    """Every process's metrics URL, by the name its job gets."""
    apis = {
        f"{name}-api": f"{service.url}/metrics"
        for name, service in (
            ("customers", system.customers),
            ("orders", system.orders),
            ("payments", system.payments),
        )
    }
    return {**apis, **{name: worker.metrics_url for name, worker in system.workers.items()}}


@pytest.fixture(scope="module")
def prometheus(system: System) -> Iterator[Prometheus]:
    running = Prometheus(targets(system)).start()
    yield running
    running.stop()


def public_order_events(system: System) -> int:
    orders = Orders(env=system.orders_db.eventsourcing_env())
    try:
        return len(event_log(orders).read(after=0, limit=100_000))
    finally:
        orders.close()


def stored_events(system: System) -> int:
    """Every event appended to both event stores, internal ones included."""
    total = 0
    for database, table in (
        (system.orders_db, "orders_events"),
        (system.payments_db, "payments_events"),
    ):
        with psycopg.connect(database.conninfo()) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            total += int(row[0]) if row else 0
    return total


async def equals(prometheus: Prometheus, promql: str, expected: float, within: float = 30) -> None:
    await eventually(
        lambda: prometheus.scalar(promql) == expected,
        within=within,
        what=f"{promql} == {expected} (last: {prometheus.scalar(promql)})",
    )


async def test_prometheus_scrapes_every_process(system: System, prometheus: Prometheus) -> None:
    await equals(prometheus, "count(up == 1)", len(targets(system)))


async def test_the_counters_match_the_orders_and_every_lag_returns_to_zero(
    system: System, prometheus: Prometheus
) -> None:
    await place_orders(system, ORDERS)
    created = (
        'http_requests_total{job="orders-api",method="POST",route="/api/v1/orders",status="201"}'
    )
    await equals(prometheus, f"sum({created})", ORDERS)
    await equals(
        prometheus, 'ordersystem_consumer_handled_events_total{consumer="payments"}', ORDERS
    )
    await equals(
        prometheus, 'ordersystem_consumer_handled_events_total{consumer="payment-results"}', ORDERS
    )
    await equals(prometheus, 'ordersystem_relay_published_messages_total{relay="payments"}', ORDERS)
    published = public_order_events(system)
    await equals(
        prometheus, 'ordersystem_relay_published_messages_total{relay="orders"}', published
    )
    for read_model in ("orders_count", "orders_by_status"):
        applied = f'ordersystem_read_model_applied_events_total{{read_model="{read_model}"}}'
        await equals(prometheus, applied, published)
    appended = "sum(ordersystem_event_store_appended_events_total)"
    await equals(prometheus, appended, stored_events(system))
    await equals(
        prometheus, "max(ordersystem_relay_lag_events) + max(ordersystem_consumer_lag_events)", 0
    )
    await equals(
        prometheus, "max(ordersystem_relay_lag_seconds) + max(ordersystem_consumer_lag_seconds)", 0
    )
    rate = 'sum(rate(ordersystem_read_model_applied_events_total{read_model="orders_count"}[1m]))'
    assert (prometheus.scalar(rate) or 0) > 0  # throughput, as a dashboard plots it


async def test_a_held_back_projector_shows_its_lag_in_prometheus_until_it_catches_up(
    system: System, prometheus: Prometheus
) -> None:
    lag = f'ordersystem_consumer_lag_events{{queue="{system.projection_queue}"}}'
    with projector_held_back(system):
        await place_orders(system, 5)
        await eventually(lambda: (prometheus.scalar(lag) or 0) >= 5, within=20, what=f"{lag} >= 5")
    await equals(prometheus, lag, 0)


DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "ordersystem.json"


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(panel["title"], t["expr"]) for panel in board["panels"] for t in panel["targets"]]


async def test_every_dashboard_panel_query_returns_data(
    system: System, prometheus: Prometheus
) -> None:
    # Grafana does not run here: each panel's PromQL goes to this Prometheus instead, after
    # the tests above drove orders through every process (rates look back a minute).
    await equals(prometheus, "count(up == 1)", len(targets(system)))
    empty = [(title, expr) for title, expr in dashboard_queries() if not prometheus.query(expr)]
    assert not empty, f"panels without data: {empty}"
    assert len(dashboard_queries()) >= 15
