"""How every API of ours is put together: one Litestar app factory for the three services."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.types import ExceptionHandlersMap, Guard

from servicekit.health import Check, health_handlers
from servicekit.problems import EXCEPTION_HANDLERS
from servicekit.ratelimit import api_middleware

MAX_BODY = 64 * 1024  # no body of ours comes near it; a larger one is a 413 before parsing


def service_app(
    title: str,
    routes: Sequence[Any],
    *,
    lifespan: Callable[[Litestar], AbstractAsyncContextManager[None]],
    rate_limit: float,
    readiness: Mapping[str, Check],
    reports: Mapping[str, Check] | None = None,
    problems: ExceptionHandlersMap | None = None,
    guards: list[Guard] | None = None,
) -> Litestar:
    """A service's app: its routes beside the health endpoints, problem details for every
    error (the service's own `problems` before the shared ones), the rate limit, the body
    limit, and OpenAPI under the service's title."""
    return Litestar(
        route_handlers=[*routes, *health_handlers(readiness, reports=reports)],
        lifespan=[lifespan],
        exception_handlers={**EXCEPTION_HANDLERS, **(problems or {})},
        middleware=api_middleware(rate_limit),
        guards=guards,
        openapi_config=OpenAPIConfig(title=title, version="1.0.0"),
        request_max_body_size=MAX_BODY,
    )
