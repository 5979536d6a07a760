"""How every API of ours is put together: one Litestar app factory for the three services."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar, Response, get
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, ExceptionHandlersMap, Guard, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST

from servicekit import tracing
from servicekit.health import Check, health_handlers
from servicekit.metrics import HTTP_LATENCY, HTTP_REQUESTS, exposition
from servicekit.problems import EXCEPTION_HANDLERS
from servicekit.ratelimit import api_middleware

MAX_BODY = 64 * 1024  # no body of ours comes near it; a larger one is a 413 before parsing


def http_metrics(service: str) -> Callable[[ASGIApp], ASGIApp]:
    """Counts each request by route template, method and status, and times it: one
    dictionary lookup and two updates per request. (Litestar's own Prometheus middleware,
    which builds a Request and four labelled children per request, cost the orders API a
    tenth more CPU per order in `make bench-ab`.)"""
    measured_by: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def middleware(app: ASGIApp) -> ASGIApp:
        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            route = scope.get("path_template", "")
            if scope["type"] != ScopeType.HTTP or route == "/metrics":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500  # unless a response starts

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                key = (scope["method"], route, status)
                if (pair := measured_by.get(key)) is None:
                    pair = measured_by[key] = (
                        HTTP_REQUESTS.labels(service, key[0], route, str(status)),
                        HTTP_LATENCY.labels(service, key[0], route),
                    )
                pair[0].inc()
                pair[1].observe(time.perf_counter() - started)

        return measured

    return middleware


UNTRACED_ROUTES = ("/metrics", "/health", "/health/ready")  # scrapes and probes, not work
TRACEPARENT_HEADER = tracing.TRACEPARENT.encode()  # ASGI headers are lower-case bytes


def http_tracing() -> Callable[[ASGIApp], ASGIApp]:
    """A SERVER span per request, `METHOD /route/{template}`, continuing the trace of a
    client that sent a `traceparent`; current while the request is handled, so the events
    it stores carry its context (servicekit.tracing). Only in a traced process's app."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            route = scope.get("path_template", "")
            if scope["type"] != ScopeType.HTTP or route in UNTRACED_ROUTES:
                await app(scope, receive, send)
                return
            sent = dict(scope["headers"]).get(TRACEPARENT_HEADER)
            with tracing.server_span(
                scope["method"], route, scope["path"], sent.decode("latin-1") if sent else None
            ) as span:

                async def sending(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        tracing.answered(span, message["status"])
                    await send(message)

                await app(scope, receive, sending)

        return traced

    return middleware


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
    service's title. Traced when OTEL_EXPORTER_OTLP_ENDPOINT is set (servicekit.tracing),
    as `<name>-api` unless OTEL_SERVICE_NAME says otherwise."""
    traced = [http_tracing()] if tracing.configure(f"{name}-api") else []
    return Litestar(
        route_handlers=[
            *routes,
            *health_handlers(readiness, reports=reports),
            metrics_endpoint,
        ],
        lifespan=[lifespan],
        on_shutdown=[tracing.flush],
        exception_handlers={**EXCEPTION_HANDLERS, **(problems or {})},
        middleware=[*traced, http_metrics(name), *api_middleware(rate_limit)],
        guards=guards,
        openapi_config=OpenAPIConfig(title=title, version="1.0.0"),
        request_max_body_size=MAX_BODY,
    )
