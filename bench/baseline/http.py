"""HTTP plumbing of the baseline's two APIs (benchmark fixture): problems, health, granian."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import psycopg
import psycopg_pool
from granian import Granian
from granian.constants import Interfaces
from granian.log import LogLevels
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.types import ExceptionHandlersMap

log = logging.getLogger(__name__)


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details with a machine-readable code, as the project answers."""

    title: str
    status: int
    code: str
    errors: list[FieldError] = []


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.problem = Problem(title=title, status=status, code=code, errors=errors or [])
        self.headers = headers or {}


def invalid(field: str, message: str, code: str = "validation_failed") -> ProblemError:
    return ProblemError(
        422, code, "The request breaks a rule", [FieldError(field=field, message=message)]
    )


def parse_whole(text: str) -> int | None:
    """A positive whole number of at most 19 ASCII digits (a bigint), or None."""
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    return int(text)


def _problem(_: Request[Any, Any, Any], exc: ProblemError) -> Response[Problem]:
    return Response(
        exc.problem,
        status_code=exc.problem.status,
        headers=exc.headers,
        media_type="application/problem+json",
    )


def _database_down(_: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.warning("database unavailable: %s", exc)
    return _problem(
        _,
        ProblemError(
            503, "database_unavailable", "The database is unavailable", headers={"Retry-After": "1"}
        ),
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ProblemError: _problem,
    psycopg.OperationalError: _database_down,
    psycopg_pool.PoolTimeout: _database_down,
}


class Health(msgspec.Struct, frozen=True):
    status: str


def health_handlers(ping: Callable[[], Awaitable[None]]) -> list[HTTPRouteHandler]:
    @get("/health", operation_id="health", sync_to_thread=False)
    def live() -> Health:
        return Health("ok")

    @get("/health/ready", operation_id="ready")
    async def ready() -> Response[Health]:
        try:
            await ping()
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return Response(Health("unavailable"), status_code=503)
        return Response(Health("ok"))

    return [live, ready]


def serve(target: str, *, host: str, port: int, log_level: str = "warning") -> None:
    """Serve an app factory with granian, one worker, as the project serves its APIs."""
    Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        factory=True,
        log_access=False,
        log_level=LogLevels(log_level.lower()),
    ).serve()
