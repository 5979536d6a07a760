"""The customer service's HTTP API: a thin adapter from Structs to the customer store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.params import FromPath, HeaderParameter, Parameter, QueryParameter
from psycopg_pool import AsyncConnectionPool

from contracts.customers import CustomerV1
from contracts.positions import (
    MIN_POSITION_HEADER,
    MIN_POSITION_QUERY,
    ORDER_LOG,
    PROJECTION_POSITION_HEADER,
    LogPosition,
    PositionTokenError,
)
from contracts.positions import PATTERN as TOKEN_PATTERN
from customer_service.projector import projection_health
from customer_service.settings import Settings
from customer_service.store import CustomerStore, migrate, seed
from projections.feed import FeedClient
from projections.orders_count import OrdersCount
from projections.watch import BehindError, PositionWatch
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
    FieldError,
    ProblemError,
    problem_spec,
    service_unavailable,
    validation_failed,
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


T = TypeVar("T")


def customer_not_found(customer_id: str) -> ProblemError:
    return ProblemError(404, "customer_not_found", "No such customer", f"customer {customer_id}")


def store(state: State) -> CustomerStore:
    customers: CustomerStore = state.customers
    return customers


# Read your own writes (docs/decisions/0014-read-your-writes.md): a read may ask for at least
# the position a write answered with; it waits, up to the deadline, for orders_count to get
# there, and says which position it was served at.
MinPositionHeader = Annotated[
    str | None,
    HeaderParameter(
        name=MIN_POSITION_HEADER,
        description="wait until orders_count has applied this position (`orders:N`, as an"
        " order's X-Event-Position gave it)",
        required=False,
        schema_extra={"pattern": TOKEN_PATTERN},  # documented; the handler says what is wrong
    ),
]
MinPositionQuery = Annotated[
    str | None,
    QueryParameter(
        name=MIN_POSITION_QUERY,
        description=f"as the {MIN_POSITION_HEADER} header",
        schema_extra={"pattern": TOKEN_PATTERN},
    ),
]
SERVED_AT = ResponseHeader(
    name=PROJECTION_POSITION_HEADER,
    description="the orders-log position orders_count was at when this was read",
    documentation_only=True,
)
POSITION_ERRORS = {
    422: problem_spec("A bad min_position, or a position in another log than orders"),
    503: problem_spec("orders_count had not reached min_position by the deadline"),
}


def min_position(header: str | None, query: str | None) -> int | None:
    """The position a read asks for (the larger, given both); 422 for a token that is not
    an orders-log position."""
    wanted: int | None = None
    for field, token in ((MIN_POSITION_HEADER, header), (MIN_POSITION_QUERY, query)):
        if token is None:
            continue
        try:
            position = LogPosition.parse(token, log=ORDER_LOG).position
        except PositionTokenError as exc:
            raise validation_failed([FieldError(field=field, message=str(exc))]) from None
        wanted = position if wanted is None else max(wanted, position)
    return wanted


async def served(
    state: State, read: Callable[[], Awaitable[tuple[T, int]]], wanted: int | None
) -> tuple[T, dict[str, str]]:
    """What `read` answers, once orders_count is at `wanted` (at once when nothing is
    asked), with the header naming the position it was read at; 503 past the deadline."""
    if wanted is None:
        found, position = await read()
    else:
        watch: PositionWatch = state.watch
        try:
            found, position = await watch.read_at_least(
                OrdersCount.name, wanted, read, state.min_position_deadline
            )
        except BehindError as exc:
            unavailable = service_unavailable(
                "read_model_behind", "orders_count has not reached that position yet"
            )
            unavailable.detail = f"at {LogPosition(ORDER_LOG, exc.position)}, asked for {wanted}"
            unavailable.headers[PROJECTION_POSITION_HEADER] = str(exc.position)
            raise unavailable from None
    return found, {PROJECTION_POSITION_HEADER: str(position)}


@get(
    "/api/v1/customers/{customer_id:str}",
    operation_id="getCustomer",
    tags=["customers"],
    response_headers=[SERVED_AT],
    responses={
        400: problem_spec(MALFORMED),
        404: problem_spec("No customer has this id"),
        **POSITION_ERRORS,
    },
)
async def get_customer(
    customer_id: FromPath[str],
    state: State,
    x_min_position: MinPositionHeader = None,
    min_position_query: MinPositionQuery = None,
) -> Response[CustomerV1]:
    """One customer with its orders_count; with a min_position, as of that position at
    least."""
    number = parse_whole(customer_id, MAX_ID)
    wanted = min_position(x_min_position, min_position_query)
    if number is None:
        raise customer_not_found(customer_id)
    found, headers = await served(state, partial(store(state).get, number), wanted)
    if found is None:
        raise customer_not_found(customer_id)
    return Response(found, headers=headers)


@get(
    "/api/v1/customers",
    operation_id="listCustomers",
    tags=["customers"],
    response_headers=[SERVED_AT],
    responses={
        400: problem_spec(MALFORMED),
        422: problem_spec("A bad limit, cursor or min_position, or a position in another log"),
        503: POSITION_ERRORS[503],
    },
)
async def list_customers(
    request: Request[Any, Any, Any],
    state: State,
    limit: Annotated[str | None, whole_number_query("page size (default 50)", 1, 500)] = None,
    cursor: Annotated[str | None, Parameter(description="from the previous page's Link")] = None,
    x_min_position: MinPositionHeader = None,
    min_position_query: MinPositionQuery = None,
) -> Response[list[CustomerV1]]:
    """Customers by id, paginated with `limit` and an opaque cursor (`Link: rel="next"`);
    with a min_position, as of that position at least."""
    size = page_limit(limit)
    after = cursor_param(cursor) or 0
    wanted = min_position(x_min_position, min_position_query)
    page, headers = await served(
        state, partial(store(state).page, limit=size + 1, after=after), wanted
    )
    more = len(page) > size
    page = page[:size]
    headers.update(next_link(request, encode_cursor(page[-1].id) if more else None))
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
        app.state.watch = PositionWatch(settings.postgres.conninfo())  # one per worker
        app.state.min_position_deadline = settings.min_position_deadline
        app.state.watch.start()
        try:
            yield
        finally:
            await app.state.watch.close()
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
