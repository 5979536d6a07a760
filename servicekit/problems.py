"""RFC 9457 problem details: one error type, one exception-to-HTTP mapping for a whole app."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from eventsourcing.persistence import InterfaceError, OperationalError
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from psycopg import OperationalError as PsycopgOperationalError
from psycopg_pool import PoolTimeout

from servicekit.failfast import DatabaseUnavailableError

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of every error response."""

    type: str
    title: str
    status: int
    code: str
    detail: str = ""
    errors: list[FieldError] = []
    instance: str = ""


class ProblemError(Exception):
    """Raise from a handler (or map to) and the app answers with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def problem(self, instance: str = "") -> Problem:
        return Problem(
            type=f"urn:ordersystem:problem:{self.code}",
            title=self.title,
            status=self.status,
            code=self.code,
            detail=self.detail,
            errors=self.errors,
            instance=instance,
        )


def validation_failed(errors: list[FieldError]) -> ProblemError:
    return ProblemError(422, "validation_failed", "The request breaks a rule", errors=errors)


def service_unavailable(code: str, title: str, retry_after: int = 1) -> ProblemError:
    return ProblemError(503, code, title, headers={"Retry-After": str(retry_after)})


def problem_response(request: Request[Any, Any, Any], error: ProblemError) -> Response[Problem]:
    return Response(
        error.problem(instance=request.url.path),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _from_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    if isinstance(exc, ValidationException):  # the framework could not read the request
        errors = [
            FieldError(field=str(item.get("key", "")), message=str(item.get("message", "")))
            for item in exc.extra or []
            if isinstance(item, dict)
        ]
        error = ProblemError(400, "malformed_request", "The request cannot be read", errors=errors)
        return problem_response(request, error)
    code = {
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        413: "request_too_large",
        429: "too_many_requests",
    }.get(exc.status_code, "http_error")
    error = ProblemError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
    return problem_response(request, error)


def _from_database_outage(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.warning("database unavailable: %s", exc)
    retry_after = max(1, round(getattr(exc, "retry_after", 1)))
    return problem_response(
        request,
        service_unavailable("database_unavailable", "The database is not reachable", retry_after),
    )


def _from_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = ProblemError(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error")
    return problem_response(request, error)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ProblemError: problem_response,
    HTTPException: _from_http_exception,
    OperationalError: _from_database_outage,
    InterfaceError: _from_database_outage,
    PsycopgOperationalError: _from_database_outage,
    PoolTimeout: _from_database_outage,
    DatabaseUnavailableError: _from_database_outage,
    Exception: _from_unexpected,
}


MALFORMED = "The request cannot be read (malformed JSON or parameters)"


def problem_spec(description: str) -> ResponseSpec:
    """An OpenAPI response entry for an error a handler can answer with."""
    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_MEDIA_TYPE
    )
