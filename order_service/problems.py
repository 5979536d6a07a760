"""One table from each order-domain error to the problem document a client gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.types import ExceptionHandlersMap

from order_service.customers import CustomerNotFoundError, CustomerServiceUnavailableError
from order_service.domain import (
    NEW_ORDER_RULE,
    InvalidOrderError,
    InvalidTransitionError,
    PaymentRequiredError,
)
from order_service.usecases import (
    ConcurrentModificationError,
    IdempotencyKeyReusedError,
    OrderNotFoundError,
    VersionMismatchError,
)
from servicekit.problems import (
    FieldError,
    Problem,
    ProblemError,
    problem_response,
    service_unavailable,
    validation_failed,
)


def order_not_found(order_id: object) -> ProblemError:
    return ProblemError(404, "order_not_found", "No such order", f"order {order_id}")


def order_refused(errors: list[FieldError]) -> ProblemError:
    """422 for an order that breaks a rule, every broken field listed.

    A status a new order may not have is `invalid_status`, whether the body's validator or
    `Order.place` found it; anything else is `validation_failed`.
    """
    if FieldError(field="status", message=NEW_ORDER_RULE) in errors:
        return ProblemError(
            422, "invalid_status", "A new order cannot have this status", errors=errors
        )
    return validation_failed(errors)


def _precondition_failed(exc: VersionMismatchError) -> ProblemError:
    return ProblemError(
        412,
        "precondition_failed",
        "The order changed since you read it",
        f"it is at version {exc.current}",
        headers={"ETag": f'"{exc.current}"'},
    )


# Every OrderError, and what the customer service answered about an order's customer, with
# what a client is told. A test checks that no OrderError is missing.
PROBLEMS: dict[type[Exception], Callable[[Any], ProblemError]] = {
    OrderNotFoundError: lambda exc: order_not_found(exc.args[0] if exc.args else ""),
    InvalidOrderError: lambda exc: order_refused(
        [FieldError(field=field, message=text) for field, text in exc.broken]
    ),
    InvalidTransitionError: lambda exc: ProblemError(
        409, "invalid_transition", "Not allowed now", str(exc)
    ),
    PaymentRequiredError: lambda exc: ProblemError(
        409, "payment_required", "Only a paid order ships", str(exc)
    ),
    ConcurrentModificationError: lambda _: ProblemError(
        409, "concurrent_modification", "Changed meanwhile; retry"
    ),
    VersionMismatchError: _precondition_failed,
    IdempotencyKeyReusedError: lambda _: ProblemError(
        422, "idempotency_key_reused", "This Idempotency-Key was used with a different body"
    ),
    CustomerNotFoundError: lambda exc: ProblemError(
        422,
        "customer_not_found",
        "The customer does not exist",
        errors=[FieldError(field="customer_id", message=f"no customer {exc.args[0]}")],
    ),
    CustomerServiceUnavailableError: lambda exc: service_unavailable(
        "customer_service_unavailable",
        "The customer service cannot be reached; nothing was stored",
        retry_after=exc.retry_after,
    ),
}


def problem_for(exc: Exception) -> ProblemError:
    """The problem for an error of the order service: its own entry, or its nearest base's."""
    for kind in type(exc).__mro__:
        if kind in PROBLEMS:
            return PROBLEMS[kind](exc)
    raise LookupError(f"no problem is mapped for {type(exc).__name__}") from exc


def _from_mapped(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    return problem_response(request, problem_for(exc))


# Registered once, by the app, for every kind in the table: Litestar picks the nearest base
# of what was raised, so a new entry needs nothing here.
ORDER_EXCEPTION_HANDLERS: ExceptionHandlersMap = {kind: _from_mapped for kind in PROBLEMS}
