"""The order service's composition root: settings in, the Orders application, the
customer-service client and the event log wired, the routes and the one error table
registered. Nothing here handles a request."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial

from litestar import Litestar

from order_service.application import MIGRATIONS, Orders
from order_service.customers import CustomerServiceClient
from order_service.problems import ORDER_EXCEPTION_HANDLERS
from order_service.relay import RELAY, event_log
from order_service.routes import ROUTES, call, orders
from order_service.settings import Settings
from servicekit.api import service_app
from servicekit.application import open_loop_pool
from servicekit.breaker import CircuitBreaker
from servicekit.schema import migrated
from servicekit.service import event_store_check


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The application is synchronous where the library is: its reads and transitions
        # run on this pool (routes.call), sized by ORDER_API_THREADS.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(settings.api_threads, thread_name_prefix="orders")
        )
        make = partial(
            Orders,
            env=settings.eventsourcing_env(),
            group_commit=settings.commit_mode == "group",
        )
        app.state.orders = await call(migrated, make, settings.postgres, MIGRATIONS)
        app.state.event_log = event_log(app.state.orders)
        app.state.partitions = settings.partitions  # of the positions it answers with
        saves = await open_loop_pool(settings.postgres.conninfo())  # placing needs no thread
        app.state.orders.saves_from(saves)
        app.state.customers = CustomerServiceClient(
            settings.customer_service_url,
            connect_timeout=settings.customer_connect_timeout,
            read_timeout=settings.customer_read_timeout,
            breaker=CircuitBreaker(
                threshold=settings.breaker_threshold,
                reset_after=settings.breaker_reset_after,
                name="customer-service",
            ),
            cache_ttl=settings.customer_cache_ttl,
            token=settings.customer_service_token,
        )
        try:
            yield
        finally:
            await app.state.customers.aclose()
            await saves.close()
            await call(app.state.orders.close)

    readiness = {"postgres": event_store_check(lambda: orders(app.state))}
    relay = RELAY.lag_report(settings, lambda: app.state.event_log)
    return (
        app := service_app(
            "orders",
            "Order service",
            ROUTES,
            lifespan=lifespan,
            rate_limit=settings.rate_limit,
            readiness=readiness,
            reports={"relay": relay},
            problems=ORDER_EXCEPTION_HANDLERS,
        )
    )


def app_from_env() -> Litestar:
    """The factory the server imports: settings from this process's environment."""
    return create_app(Settings.from_env(os.environ))
