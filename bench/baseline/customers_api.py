"""The baseline's customer API (benchmark fixture): a customer with its orders_count."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, get
from litestar.datastructures import State
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from bench.baseline.http import (
    EXCEPTION_HANDLERS,
    FieldError,
    ProblemError,
    health_handlers,
    parse_whole,
)
from bench.baseline.lookup import Customer, from_table
from bench.baseline.settings import Settings

MAX_ID = 2**63 - 1


def _not_found(customer_id: str) -> ProblemError:
    error = FieldError(field="id", message=f"no customer {customer_id}")
    return ProblemError(404, "customer_not_found", "The customer does not exist", [error])


@get("/api/v1/customers/{customer_id:str}", operation_id="getCustomer")
async def get_customer(customer_id: str, state: State) -> Customer:
    """The customer and how many orders it has (the orders-count consumer keeps it)."""
    number = parse_whole(customer_id)
    if number is None or not 1 <= number <= MAX_ID:
        raise _not_found(customer_id)
    customer = await state.fetch(number)
    if customer is None:
        raise _not_found(customer_id)
    assert isinstance(customer, Customer)
    return customer


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncConnectionPool[AsyncConnection[Any]](
            settings.conninfo("customers", "customers-api"),
            min_size=2,
            max_size=settings.api_pool_size,
            kwargs={"autocommit": True},
            open=False,
        ) as pool:
            app.state.pool = pool
            app.state.fetch = from_table(pool)
            yield

    async def ping() -> None:
        async with app.state.pool.connection() as conn:
            await conn.execute("SELECT 1")

    app = Litestar(
        route_handlers=[get_customer, *health_handlers(ping)],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=None,
    )
    return app


def app_from_env() -> Litestar:
    """The factory granian imports in its worker."""
    return create_app(Settings.from_env(os.environ))
