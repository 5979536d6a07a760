"""One table from each order-domain error to the problem document a client gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.types import ExceptionHandlersMap

from order_service.application import (
    ConcurrentModificationError,
    IdempotencyKeyReusedError,
    OrderNotFoundError,
    VersionMismatchError,
)
from order_service.domain import (
    InvalidOrderError,
    InvalidTransitionError,
    OrderError,
    PaymentRequiredError,
)
from servicekit.problems import (
    FieldError,
    Problem,
    ProblemError,
    problem_response,
    validation_failed,
)


def order_not_found(order_id: object) -> ProblemError:
    return ProblemError(404, "order_not_found", "No such order", f"order {order_id}")


def order_refused(shape: list[FieldError], broken: list[tuple[str, str]]) -> ProblemError:
    """422 for an order that breaks a rule, every broken field listed.

    `shape` holds fields of the wrong type or value, `broken` the order rules a field breaks
    (`rule_violations`, or what `Order.place` refused). A status a new order may not have is
    `invalid_status`; anything else is `validation_failed`.
    """
    errors = [*shape, *(FieldError(field=field, message=text) for field, text in broken)]
    if any(field == "status" for field, _ in broken):
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


# Every OrderError, and what a client is told. A test checks that none is missing.
PROBLEMS: dict[type[OrderError], Callable[[Any], ProblemError]] = {
    OrderNotFoundError: lambda exc: order_not_found(exc.args[0] if exc.args else ""),
    InvalidOrderError: lambda exc: order_refused([], exc.broken),
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
}


def problem_for(exc: OrderError) -> ProblemError:
    """The problem for an order error: its own entry, or its nearest base's."""
    for kind in type(exc).__mro__:
        if kind in PROBLEMS:
            return PROBLEMS[kind](exc)
    raise LookupError(f"no problem is mapped for {type(exc).__name__}") from exc


def _from_order_error(request: Request[Any, Any, Any], exc: OrderError) -> Response[Problem]:
    return problem_response(request, problem_for(exc))


ORDER_EXCEPTION_HANDLERS: ExceptionHandlersMap = {OrderError: _from_order_error}
