"""Rebuild, replay and verify are command-line only: no HTTP route of any service changes
data except the documented order, transition and customer writes."""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from customer_service.api import create_app as customers_app
from customer_service.settings import Settings as CustomerSettings
from order_service.app import create_app as orders_app
from order_service.settings import Settings as OrderSettings
from payment_service.api import create_app as payments_app
from payment_service.settings import Settings as PaymentSettings

READS = {"GET", "HEAD", "OPTIONS"}
WRITES = {
    "orders": {
        "POST /api/v1/orders",
        *(f"POST /api/v1/orders/{{order_id:str}}/{a}" for a in ("confirm", "ship", "deliver")),
        "POST /api/v1/orders/{order_id:str}/cancel",
    },
    "customers": {"POST /api/v1/customers"},
    "payments": set(),  # payments are decided from messages, never over HTTP
}
OPERATIONS = re.compile(r"rebuild|replay|republish|verify|projection|admin", re.IGNORECASE)


def app(service: str) -> Litestar:
    """The app as served, routes and all (its lifespan, which connects, is not run)."""
    if service == "orders":
        return orders_app(OrderSettings.from_env({}))
    if service == "customers":
        return customers_app(CustomerSettings.from_env({}))
    return payments_app(PaymentSettings.from_env({}))


def routes(service: str) -> set[tuple[str, str]]:
    served = app(service).routes
    assert all(isinstance(route, HTTPRoute) for route in served)  # no mounted ASGI app
    return {(method, route.path) for route in served for method in route.methods}


@pytest.mark.parametrize("service", ["orders", "customers", "payments"])
def test_the_only_writing_routes_are_the_documented_ones(service: str) -> None:
    writes = {f"{method} {path}" for method, path in routes(service) if method not in READS}

    assert writes == WRITES[service]


@pytest.mark.parametrize("service", ["orders", "customers", "payments"])
def test_no_route_rebuilds_replays_or_verifies(service: str) -> None:
    found = routes(service)

    assert found  # the app has routes: an empty list would prove nothing
    assert not [path for _, path in found if OPERATIONS.search(path)]


def test_the_command_line_names_every_read_model_the_customer_service_keeps() -> None:
    from customer_service.projector import PROJECTIONS
    from ordersystem.cli import parser
    from ordersystem.commands import READ_MODELS

    assert set(READ_MODELS) == set(PROJECTIONS)
    both = parser().parse_args(["project", *READ_MODELS])
    assert both.projection == list(READ_MODELS)
    with pytest.raises(SystemExit):
        parser().parse_args(["project", "orders-count", "no-such-model"])
