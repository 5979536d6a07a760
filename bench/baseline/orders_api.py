"""The baseline's order API (benchmark fixture): an order row and its outbox row written by
one statement, so both commit or neither; reads straight from the orders table."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from bench.baseline.http import (
    EXCEPTION_HANDLERS,
    FieldError,
    ProblemError,
    health_handlers,
    invalid,
    parse_whole,
)
from bench.baseline.lookup import CachedLookup, Customer, from_api, from_table
from bench.baseline.order_body import CENT, MAX_ID, OrderBody, parse_order
from bench.baseline.outbox import Notifier
from bench.baseline.settings import Settings
from bench.baseline.wire import ORDER_CREATED, Envelope, OrderCreated, encode

# Data-modifying CTEs run exactly once, in the statement's one transaction: one round trip.
PLACE = """
WITH placed AS (
    INSERT INTO orders (id, customer_id, product_name, quantity, price, total, status,
                        created_at, updated_at)
    VALUES (%(id)s, %(customer_id)s, %(product_name)s, %(quantity)s, %(price)s, %(total)s,
            %(status)s, %(at)s, %(at)s))
INSERT INTO outbox (event_id, routing_key, payload) VALUES (%(id)s, %(key)s, %(payload)s)
"""
COLUMNS = (
    "id, customer_id, product_name, quantity, price, total, status, payment_status, version,"
    " created_at, updated_at"
)
NEWEST = "ORDER BY created_at DESC, id DESC LIMIT %s"
LIST_ONE = f"SELECT {COLUMNS} FROM orders WHERE customer_id = %s {NEWEST}"
LIST_ALL = f"SELECT {COLUMNS} FROM orders {NEWEST}"
Pool = AsyncConnectionPool[AsyncConnection[Any]]


class OrderView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    customer_id: int
    product_name: str
    quantity: int
    price: Decimal
    total: Decimal
    status: str
    payment_status: str
    version: int
    created_at: datetime
    updated_at: datetime


class OrderWithCustomer(OrderView, frozen=True):
    customer: Customer


def _customer_not_found(customer_id: int) -> ProblemError:
    error = FieldError(field="customer_id", message=f"no customer {customer_id}")
    return ProblemError(422, "customer_not_found", "The customer does not exist", [error])


def _created(body: OrderBody, customer: Customer) -> OrderWithCustomer:
    now = datetime.now(UTC)
    total = (body.price * body.quantity).quantize(CENT)
    price = body.price.quantize(CENT)
    return OrderWithCustomer(
        uuid.uuid4(), body.customer_id, body.product_name, body.quantity, price, total,
        body.status, "pending", 1, now, now, customer,
    )  # fmt: skip


def _event(order: OrderView) -> bytes:
    """The order.created message; its event id is the order's (an order is created once)."""
    data = OrderCreated(
        order_id=order.id,
        customer_id=order.customer_id,
        product_name=order.product_name,
        quantity=order.quantity,
        price=order.price,
        total=order.total,
        status=order.status,
    )
    return encode(
        Envelope(id=order.id, type=ORDER_CREATED, occurred_at=order.created_at, data=data)
    )


@post("/api/v1/orders", operation_id="createOrder", status_code=201)
async def create_order(
    request: Request[Any, Any, Any], state: State
) -> Response[OrderWithCustomer]:
    """Place an order for an existing customer: 201 with the customer embedded."""
    body = parse_order(await request.body())
    customer = await state.customers.get(body.customer_id)
    if customer is None:
        raise _customer_not_found(body.customer_id)
    order = _created(body, customer)
    values = {
        "id": order.id,
        "customer_id": order.customer_id,
        "product_name": order.product_name,
        "quantity": order.quantity,
        "price": order.price,
        "total": order.total,
        "status": order.status,
        "at": order.created_at,
        "key": ORDER_CREATED,
        "payload": _event(order),
    }
    pool: Pool = state.pool
    async with pool.connection() as conn:
        await conn.execute(PLACE, values)
    if state.notifier is not None:
        state.notifier.committed()
    return Response(order, status_code=201, headers={"Location": f"/api/v1/orders/{order.id}"})


def _whole(name: str, text: str | None, default: int, high: int) -> int:
    if text is None:
        return default
    number = parse_whole(text)
    if number is None or not 1 <= number <= high:
        raise invalid(name, f"must be a whole number from 1 to {high}")
    return number


@get("/api/v1/orders", operation_id="listOrders")
async def list_orders(
    state: State, customer_id: str | None = None, limit: str | None = None
) -> list[OrderView]:
    """Orders newest first (`limit`, default 50, at most 500); one customer's with customer_id."""
    size = _whole("limit", limit, 50, 500)
    customer = _whole("customer_id", customer_id, 0, MAX_ID)
    query, args = (LIST_ONE, (customer, size)) if customer else (LIST_ALL, (size,))
    pool: Pool = state.pool
    async with pool.connection() as conn:
        cursor = await conn.execute(query, args)
        return [OrderView(*row) for row in await cursor.fetchall()]


@get("/api/v1/orders/{order_id:str}", operation_id="getOrder")
async def get_order(order_id: str, state: State) -> OrderView:
    """One order; 404 for an unknown or malformed id."""
    try:
        key = uuid.UUID(order_id)
    except ValueError:
        key = None
    row = None
    if key is not None:
        pool: Pool = state.pool
        async with pool.connection() as conn:
            cursor = await conn.execute(f"SELECT {COLUMNS} FROM orders WHERE id = %s", (key,))
            row = await cursor.fetchone()
    if row is None:
        raise ProblemError(404, "order_not_found", "No order has this id")
    return OrderView(*row)


def _pool(settings: Settings, service: str, size: int) -> Pool:
    conninfo = settings.conninfo(service, "orders-api")
    return Pool(conninfo, min_size=size, max_size=size, kwargs={"autocommit": True}, open=False)


async def _customers(settings: Settings, resources: AsyncExitStack) -> CachedLookup:
    if settings.customer_lookup == "db":
        table = await resources.enter_async_context(_pool(settings, "customers", 4))
        return CachedLookup(from_table(table), settings.customer_cache_ttl)
    session = aiohttp.ClientSession(
        base_url=settings.customers_url,
        timeout=aiohttp.ClientTimeout(total=1.5, connect=0.5),
        connector=aiohttp.TCPConnector(limit=64),
    )
    await resources.enter_async_context(session)
    return CachedLookup(from_api(session), settings.customer_cache_ttl)


async def _notifier(settings: Settings, resources: AsyncExitStack) -> Notifier:
    conninfo = settings.conninfo("orders", "orders-api")
    conn = await AsyncConnection.connect(conninfo, autocommit=True)
    resources.push_async_callback(conn.close)
    notifier = Notifier(conn)
    task = asyncio.create_task(notifier.run())
    resources.callback(task.cancel)
    return notifier


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as resources:
            pool = _pool(settings, "orders", settings.api_pool_size)
            app.state.pool = await resources.enter_async_context(pool)
            app.state.customers = await _customers(settings, resources)
            app.state.notifier = None
            if settings.notify:
                app.state.notifier = await _notifier(settings, resources)
            yield

    async def ping() -> None:
        async with app.state.pool.connection() as conn:
            await conn.execute("SELECT 1")

    app = Litestar(
        route_handlers=[create_order, list_orders, get_order, *health_handlers(ping)],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=None,
        request_max_body_size=64 * 1024,
    )
    return app


def app_from_env() -> Litestar:
    """The factory granian imports in its worker."""
    return create_app(Settings.from_env(os.environ))
