"""The customer service's HTTP API: a thin adapter from Structs to the customer store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, Parameter
from psycopg_pool import AsyncConnectionPool

from contracts.customers import CustomerV1
from customer_service.projector import projection_health
from customer_service.settings import Settings
from customer_service.store import CustomerStore, migrate, seed
from projections.feed import FeedClient
from servicekit.api import service_app
from servicekit.auth import require_token
from servicekit.http import (
    NON_BLANK_TEXT,
    cursor_param,
    decode_json,
    encode_cursor,
    inline_schema,
    json_body_operation,
    next_link,
    page_limit,
    parse_whole,
    whole_number_query,
)
from servicekit.problems import (
    MALFORMED,
    ProblemError,
    problem_spec,
)
from servicekit.validation import BodyValidator

NAME_MAX = 200
MAX_ID = 2**63 - 1  # bigint
ADDRESS_MAX = 500


class NewCustomer(msgspec.Struct, frozen=True, kw_only=True):
    customer_name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=NAME_MAX, pattern=NON_BLANK_TEXT)
    ]
    address: Annotated[
        str, msgspec.Meta(min_length=1, max_length=ADDRESS_MAX, pattern=NON_BLANK_TEXT)
    ]


parse_new_customer = BodyValidator(NewCustomer)


def customer_not_found(customer_id: str) -> ProblemError:
    return ProblemError(404, "customer_not_found", "No such customer", f"customer {customer_id}")


def store(state: State) -> CustomerStore:
    customers: CustomerStore = state.customers
    return customers


@get(
    "/api/v1/customers/{customer_id:str}",
    operation_id="getCustomer",
    tags=["customers"],
    responses={400: problem_spec(MALFORMED), 404: problem_spec("No customer has this id")},
)
async def get_customer(customer_id: FromPath[str], state: State) -> CustomerV1:
    """One customer with its orders_count."""
    number = parse_whole(customer_id, MAX_ID)
    found = await store(state).get(number) if number is not None else None
    if found is None:
        raise customer_not_found(customer_id)
    return found


@get(
    "/api/v1/customers",
    operation_id="listCustomers",
    tags=["customers"],
    responses={400: problem_spec(MALFORMED), 422: problem_spec("A bad limit or cursor")},
)
async def list_customers(
    request: Request[Any, Any, Any],
    state: State,
    limit: Annotated[str | None, whole_number_query("page size (default 50)", 1, 500)] = None,
    cursor: Annotated[str | None, Parameter(description="from the previous page's Link")] = None,
) -> Response[list[CustomerV1]]:
    """Customers by id, paginated with `limit` and an opaque cursor (`Link: rel="next"`)."""
    size = page_limit(limit)
    page = await store(state).page(limit=size + 1, after=cursor_param(cursor) or 0)
    more = len(page) > size
    page = page[:size]
    headers = next_link(request, encode_cursor(page[-1].id) if more else None)
    return Response(page, headers=headers)


@post(
    "/api/v1/customers",
    operation_id="createCustomer",
    tags=["customers"],
    operation_class=json_body_operation(inline_schema(NewCustomer)),
    responses={
        400: problem_spec(MALFORMED),
        422: problem_spec("A field breaks a rule"),
    },
)
async def create_customer(request: Request[Any, Any, Any], state: State) -> Response[CustomerV1]:
    """Create a customer; 201 with its Location."""
    new = parse_new_customer(decode_json(await request.body()))
    customer = await store(state).add(customer_name=new.customer_name, address=new.address)
    location = f"/api/v1/customers/{customer.id}"
    return Response(customer, status_code=201, headers={"Location": location})


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, settings.postgres)
        await asyncio.to_thread(seed, settings.postgres)
        pool = AsyncConnectionPool(
            settings.postgres.conninfo(),
            min_size=1,
            max_size=settings.db_pool_size,
            timeout=2.0,
            check=AsyncConnectionPool.check_connection,  # one dead since a restart is replaced
            open=False,
        )
        await pool.open(wait=False)
        app.state.customers = CustomerStore(pool, settings.postgres.dbname)
        app.state.feed = FeedClient(settings.order_service_url, timeout=1.5)
        try:
            yield
        finally:
            await app.state.feed.aclose()
            await pool.close()

    async def database() -> None:
        await CustomerStore.ping(app.state.customers)

    async def orders_count() -> dict[str, Any]:
        return await projection_health(settings, app.state.feed)

    app = service_app(
        "customers",
        "Customer service",
        [get_customer, list_customers, create_customer],
        lifespan=lifespan,
        rate_limit=settings.rate_limit,
        readiness={"postgres": database, "orders_count_projection": orders_count},
        guards=require_token(settings.api_token),
    )
    return app


def app_from_env() -> Litestar:
    """The factory the server imports: settings from this process's environment."""
    return create_app(Settings.from_env(os.environ))
