"""How every API of ours is put together: one Litestar app factory for the three services."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar, Response, get
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ExceptionHandlersMap, Guard
from prometheus_client import CONTENT_TYPE_LATEST

from servicekit.health import Check, health_handlers
from servicekit.metrics import exposition
from servicekit.problems import EXCEPTION_HANDLERS
from servicekit.ratelimit import api_middleware

MAX_BODY = 64 * 1024  # no body of ours comes near it; a larger one is a 413 before parsing


def http_metrics(service: str) -> DefineMiddleware:
    """Requests by route template, method and status, and their latency (Litestar's own
    middleware): `http_requests_total` and `http_request_duration_seconds`, labelled with the
    service as `app_name`."""
    config = PrometheusConfig(
        app_name=service,
        prefix="http",
        group_path=True,  # the route's template, never a raw path: ids would explode labels
        exclude=["/metrics"],
        buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
    )
    return config.middleware


# Litestar appends the charset to a text/ media type itself.
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")


# For Prometheus, not for the API's clients: in the Prometheus text format, left out of the
# OpenAPI document as the format is Prometheus's to describe.
@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics_endpoint() -> Response[bytes]:
    """The process's metrics in the Prometheus text format."""
    return Response(exposition(), media_type=METRICS_MEDIA_TYPE)


def service_app(
    name: str,
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
    """A service's app: its routes beside the health and metrics endpoints, problem details
    for every error (the service's own `problems` before the shared ones), its requests
    counted and timed under `name`, the rate limit, the body limit, and OpenAPI under the
    service's title."""
    return Litestar(
        route_handlers=[
            *routes,
            *health_handlers(readiness, reports=reports),
            metrics_endpoint,
        ],
        lifespan=[lifespan],
        exception_handlers={**EXCEPTION_HANDLERS, **(problems or {})},
        middleware=[http_metrics(name), *api_middleware(rate_limit)],
        guards=guards,
        openapi_config=OpenAPIConfig(title=title, version="1.0.0"),
        request_max_body_size=MAX_BODY,
    )
