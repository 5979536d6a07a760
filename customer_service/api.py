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
from contracts.partitions import Partition, layout
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
from projections.tracking import partition_in, partition_name
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


def min_position(header: str | None, query: str | None, partitions: int) -> LogPosition | None:
    """The position a read asks for (the larger, given both); 422 for a token that is not
    an orders-log position of this layout: a partition's (`orders/2of4:N`) when the log is
    in partitions, the whole log's (`orders:N`) when not, and one partition's if both."""
    wanted: LogPosition | None = None
    for field, token in ((MIN_POSITION_HEADER, header), (MIN_POSITION_QUERY, query)):
        if token is None:
            continue
        try:
            asked = LogPosition.parse(token, log=ORDER_LOG)
        except PositionTokenError as exc:
            raise validation_failed([FieldError(field=field, message=str(exc))]) from None
        if (problem := _of_another_layout(asked, partitions)) or (
            wanted is not None and wanted.partition != asked.partition
        ):
            message = problem or "the header and the query name two partitions"
            raise validation_failed([FieldError(field=field, message=message)])
        wanted = asked if wanted is None or asked.position > wanted.position else wanted
    return wanted


def _of_another_layout(asked: LogPosition, partitions: int) -> str | None:
    if partitions == 1:
        return "the orders log is not in partitions here" if asked.partition else None
    if asked.partition is None or Partition.parse(asked.partition).count != partitions:
        return (
            f"the orders log is in {partitions} partitions: a position names one, such as"
            f" orders/0of{partitions}:42"
        )
    return None


def tracking_row(partition: str | None) -> str:
    """orders_count's tracking row for a partition, or the whole log's."""
    return OrdersCount.name if partition is None else partition_name(OrdersCount.name, partition)


async def served(
    state: State,
    read: Callable[[str], Awaitable[tuple[T, int]]],
    wanted: LogPosition | None,
    partition: str | None,
) -> tuple[T, dict[str, str]]:
    """What `read` answers (given the tracking row it reports), once orders_count is at
    `wanted` (at once when nothing is asked), with the header naming the position it was
    read at, of `partition` when the log is in partitions; 503 past the deadline."""
    tracking = tracking_row(partition)
    if wanted is None:
        found, position = await read(tracking)
    else:
        watch: PositionWatch = state.watch
        try:
            found, position = await watch.read_at_least(
                tracking, wanted.position, partial(read, tracking), state.min_position_deadline
            )
        except BehindError as exc:
            unavailable = service_unavailable(
                "read_model_behind", "orders_count has not reached that position yet"
            )
            at = LogPosition(ORDER_LOG, exc.position, partition)
            unavailable.detail = f"at {at}, asked for {wanted}"
            unavailable.headers[PROJECTION_POSITION_HEADER] = _served_at(exc.position, partition)
            raise unavailable from None
    return found, {PROJECTION_POSITION_HEADER: _served_at(position, partition)}


def _served_at(position: int, partition: str | None) -> str:
    """The header's value: the number alone for the whole log (as before partitions), a
    partition's token otherwise."""
    return str(position) if partition is None else str(LogPosition(ORDER_LOG, position, partition))


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
    partitions: int = state.partitions
    wanted = min_position(x_min_position, min_position_query, partitions)
    if number is None:
        raise customer_not_found(customer_id)
    partition = str(Partition.of(number, partitions)) if partitions > 1 else None
    if wanted is not None and wanted.partition != partition:  # decision 14: it promises nothing
        field = MIN_POSITION_HEADER if x_min_position is not None else MIN_POSITION_QUERY
        message = f"a position of partition {wanted.partition}; this customer's is {partition}"
        raise validation_failed([FieldError(field=field, message=message)])
    found, headers = await served(state, partial(store(state).get, number), wanted, partition)
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
    partitions: int = state.partitions
    wanted = min_position(x_min_position, min_position_query, partitions)
    read = partial(_page, store(state), limit=size + 1, after=after)
    if partitions == 1 or wanted is not None:  # the token's partition, or the whole log
        page, headers = await served(state, read, wanted, wanted.partition if wanted else None)
    else:  # in partitions, and no token: where each partition had got
        page, _ = await read(OrdersCount.name)
        reached = await store(state).positions([tracking_row(str(p)) for p in layout(partitions)])
        headers = {
            PROJECTION_POSITION_HEADER: ", ".join(
                _served_at(position, partition_in(name)) for name, position in reached.items()
            )
        }
    more = len(page) > size
    page = page[:size]
    headers.update(next_link(request, encode_cursor(page[-1].id) if more else None))
    return Response(page, headers=headers)


async def _page(
    customers: CustomerStore, tracking: str, *, limit: int, after: int
) -> tuple[list[CustomerV1], int]:
    return await customers.page(limit=limit, after=after, tracking=tracking)


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
        app.state.partitions = settings.partitions
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
