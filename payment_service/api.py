"""The payment service's HTTP API: show payments, by id or by order."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated
from uuid import UUID

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.openapi.spec import OpenAPIType
from litestar.params import FromPath, Parameter

from payment_service.application import MIGRATIONS, PaymentNotFoundError, Payments, PaymentView
from payment_service.relay import RELAY, event_log
from payment_service.settings import Settings
from servicekit.api import service_app
from servicekit.problems import (
    MALFORMED,
    FieldError,
    ProblemError,
    problem_spec,
    validation_failed,
)
from servicekit.schema import migrated
from servicekit.service import event_store_check


def payments(state: State) -> Payments:
    app: Payments = state.payments
    return app


def payment_not_found(payment_id: object) -> ProblemError:
    return ProblemError(404, "payment_not_found", "No such payment", f"payment {payment_id}")


def payment_uuid(payment_id: str) -> UUID:
    """The payment id in a path; one that is not a UUID names no payment (404)."""
    try:
        return UUID(payment_id)
    except ValueError:
        raise payment_not_found(payment_id) from None


@get(
    "/api/v1/payments/{payment_id:str}",
    operation_id="getPayment",
    tags=["payments"],
    responses={400: problem_spec(MALFORMED), 404: problem_spec("No payment has this id")},
)
async def get_payment(payment_id: FromPath[str], state: State) -> PaymentView:
    """One payment: its order, amount, and what was decided."""
    payment = payment_uuid(payment_id)  # parsed first: only the application's answer is 404
    try:
        return await asyncio.to_thread(payments(state).get, payment)
    except PaymentNotFoundError:
        raise payment_not_found(payment) from None


@get(
    "/api/v1/payments",
    operation_id="listPayments",
    tags=["payments"],
    responses={400: problem_spec(MALFORMED), 422: problem_spec("order_id missing or malformed")},
)
async def payments_of_order(
    state: State,
    order_id: Annotated[
        str | None,
        Parameter(
            description="the order whose payment to show",
            required=True,
            schema_extra={"one_of": None, "type": OpenAPIType.STRING, "format": "uuid"},
        ),
    ] = None,
) -> list[PaymentView]:
    """The payment of an order (an order has at most one): `?order_id=...`."""
    try:
        order = UUID(order_id or "")
    except ValueError:
        message = "is required and must be a UUID"
        raise validation_failed([FieldError(field="order_id", message=message)]) from None
    found = await asyncio.to_thread(payments(state).for_order, order)
    return [found] if found else []


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        make = partial(Payments, env=settings.eventsourcing_env())
        app.state.payments = await asyncio.to_thread(migrated, make, settings.postgres, MIGRATIONS)
        app.state.event_log = event_log(app.state.payments)
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.payments.close)

    readiness = {"postgres": event_store_check(lambda: payments(app.state))}
    relay = RELAY.lag_report(settings, lambda: app.state.event_log)

    app = service_app(
        "payments",
        "Payment service",
        [get_payment, payments_of_order],
        lifespan=lifespan,
        rate_limit=settings.rate_limit,
        readiness=readiness,
        reports={"relay": relay},
    )
    return app


def app_from_env() -> Litestar:
    """The factory the server imports: settings from this process's environment."""
    return create_app(Settings.from_env(os.environ))
