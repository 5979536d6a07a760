"""The order service's routes: each handler parses what it was sent, makes one call into the
Orders application and shapes the answer. Errors become problem documents through one
table (order_service.problems), registered once by the app (order_service.app)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation
from litestar.params import FromPath, HeaderParameter, Parameter

from contracts.customers import CustomerV1
from contracts.partitions import Partition
from contracts.positions import EVENT_POSITION_HEADER, ORDER_LOG, LogPosition
from order_service.application import Orders
from order_service.customers import CustomerServiceClient
from order_service.feed import list_events
from order_service.problems import order_not_found
from order_service.requests import (
    IDEMPOTENCY_KEY_MAX,
    CancelBody,
    expected_version,
    order_body_schema,
    parse_cancel_reason,
    parse_place_order,
)
from order_service.usecases import ACTIONS, HistoryEntry, Recorded
from order_service.views import OrderView
from servicekit.http import (
    cursor_param,
    decode_json,
    encode_cursor,
    inline_schema,
    json_body_operation,
    next_link,
    page_limit,
    whole_number_query,
    whole_param,
)
from servicekit.problems import (
    MALFORMED,
    FieldError,
    problem_spec,
    validation_failed,
)

T = TypeVar("T")
CORRELATION_HEADER = "X-Correlation-ID"


class OrderWithCustomer(OrderView, frozen=True, kw_only=True):
    customer: CustomerV1


def orders(state: State) -> Orders:
    app: Orders = state.orders
    return app


def customers(state: State) -> CustomerServiceClient:
    client: CustomerServiceClient = state.customers
    return client


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a call into the (synchronous) event-sourced application off the event loop."""
    return await asyncio.to_thread(partial(function, *args, **kwargs))


def correlation_id(request: Request[Any, Any, Any]) -> str:
    given = request.headers.get(CORRELATION_HEADER, "")
    return given[:100] if given.isprintable() and given else str(uuid.uuid4())


def order_uuid(order_id: str) -> UUID:
    """The order id in a path; one that is not a UUID names no order (404)."""
    try:
        return UUID(order_id)
    except ValueError:
        raise order_not_found(order_id) from None


def recorded_headers(recorded: Recorded, state: State) -> dict[str, str]:
    """The headers of an answer that recorded a change: the order's version and the log
    position a reader can wait for (contracts.positions); with the log in partitions, a
    position of the order's partition (its customer's), which is what a reader waits on."""
    headers = {"ETag": f'"{recorded.order.version}"'}
    if recorded.position is not None:
        partitions: int = state.partitions
        partition = (
            str(Partition.of(recorded.order.customer_id, partitions)) if partitions > 1 else None
        )
        position = LogPosition(ORDER_LOG, recorded.position, partition)
        headers[EVENT_POSITION_HEADER] = str(position)
    return headers


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        message = f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters"
        raise validation_failed([FieldError(field="Idempotency-Key", message=message)])
    return key


@post(
    "/api/v1/orders",
    operation_id="createOrder",
    tags=["orders"],
    status_code=201,
    operation_class=json_body_operation(order_body_schema()),
    responses={
        400: problem_spec(MALFORMED),
        200: ResponseSpec(
            OrderWithCustomer, description="Replay: the order this Idempotency-Key created"
        ),
        422: problem_spec(
            "A field breaks a rule, the customer does not exist, or the key was reused"
        ),
        503: problem_spec("The customer service cannot be reached; nothing was stored"),
    },
)
async def create_order(
    request: Request[Any, Any, Any], state: State
) -> Response[OrderWithCustomer]:
    """Place an order for an existing customer; 201 with Location and the customer embedded
    (200 with the order it created when an Idempotency-Key is replayed)."""
    command = parse_place_order(decode_json(await request.body()))
    key, correlation = idempotency_key(request), correlation_id(request)
    customer = await customers(state).get(command.customer_id)
    placed = await orders(state).place_from_loop(
        command, idempotency_key=key, correlation_id=correlation
    )
    order = placed.order
    return Response(
        OrderWithCustomer(**msgspec.structs.asdict(order), customer=customer),
        status_code=201 if placed.created else 200,
        headers={
            "Location": f"/api/v1/orders/{order.id}",
            CORRELATION_HEADER: correlation,
            **recorded_headers(placed, state),
        },
    )


def _transition_handler(action: str) -> HTTPRouteHandler:
    @post(
        f"/api/v1/orders/{{order_id:str}}/{action}",
        operation_id=f"{action}Order",
        summary=f"{action.capitalize()} an order",
        tags=["orders"],
        status_code=200,
        operation_class=(
            json_body_operation(inline_schema(CancelBody), required=False)
            if action == "cancel"
            else Operation
        ),
        responses={
            400: problem_spec(MALFORMED),
            404: problem_spec("No order has this id"),
            409: problem_spec(
                "Its status does not allow this (invalid_transition), or it is not paid yet"
                " (payment_required)"
            ),
            412: problem_spec("If-Match names a version the order is no longer at"),
            422: problem_spec("A bad cancellation reason"),
        },
    )
    async def transition(
        order_id: FromPath[str],
        request: Request[Any, Any, Any],
        state: State,
        if_match: Annotated[str | None, HeaderParameter(name="If-Match")] = None,
    ) -> Response[OrderView]:
        """Move the order along its lifecycle; 409 when its status does not allow it."""
        order = order_uuid(order_id)
        body = await request.body()
        # No body at all is no reason; anything else must be JSON (whitespace alone is not).
        reason = parse_cancel_reason(decode_json(body) if body else {})
        recorded = await call(
            orders(state).transition,
            order,
            action,
            expected_version=expected_version(if_match),
            reason=reason,
            correlation_id=correlation_id(request),
        )
        return Response(recorded.order, headers=recorded_headers(recorded, state))

    return transition


TRANSITION_HANDLERS = [_transition_handler(action) for action in ACTIONS]


@get(
    "/api/v1/orders/{order_id:str}/events",
    operation_id="getOrderHistory",
    tags=["orders"],
    responses={400: problem_spec(MALFORMED), 404: problem_spec("No order has this id")},
)
async def order_history(order_id: FromPath[str], state: State) -> list[HistoryEntry]:
    """The order's event stream for auditing: every event in version order."""
    return await call(orders(state).history, order_uuid(order_id))


@get(
    "/api/v1/orders",
    operation_id="listOrders",
    tags=["orders"],
    responses={
        400: problem_spec(MALFORMED),
        422: problem_spec("A bad customer_id, limit or cursor"),
    },
)
async def list_orders(
    request: Request[Any, Any, Any],
    state: State,
    customer_id: Annotated[
        str | None, whole_number_query("only this customer's orders", 1, 2**63 - 1)
    ] = None,
    limit: Annotated[str | None, whole_number_query("page size (default 50)", 1, 500)] = None,
    cursor: Annotated[str | None, Parameter(description="from the previous page's Link")] = None,
) -> Response[list[OrderView]]:
    """Orders newest first, paginated with `limit` and an opaque cursor (`Link: rel="next"`)."""
    size, before = page_limit(limit), cursor_param(cursor)
    customer = whole_param("customer_id", customer_id, default=0, low=1, high=2**63 - 1) or None
    page = await call(orders(state).list_orders, customer_id=customer, limit=size, before=before)
    cursor_out = encode_cursor(page.next_position) if page.next_position is not None else None
    return Response(page.orders, headers=next_link(request, cursor_out))


@get(
    "/api/v1/orders/{order_id:str}",
    operation_id="getOrder",
    tags=["orders"],
    responses={
        400: problem_spec(MALFORMED),
        404: problem_spec("No order has this id (or it never reached that version)"),
        422: problem_spec("A bad version"),
    },
)
async def get_order(
    order_id: FromPath[str],
    state: State,
    version: Annotated[
        str | None, whole_number_query("the order as it was then", 1, 2**63 - 1)
    ] = None,
) -> Response[OrderView]:
    """One order, read from its event stream; `?version=N` shows it as it was at version N."""
    order = order_uuid(order_id)
    at = whole_param("version", version, default=0, low=1, high=2**63 - 1) or None
    view = await call(orders(state).get_order, order, at)
    return Response(view, headers={"ETag": f'"{view.version}"'})


ROUTES = [
    create_order,
    list_orders,
    get_order,
    order_history,
    *TRANSITION_HANDLERS,
    list_events,
]
