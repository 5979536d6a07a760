"""Liveness and readiness endpoints built from a service's named readiness checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

Check = Callable[[], Awaitable[Any]]


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    checks: dict[str, Any] = {}


async def _run(check: Check, seconds: float) -> tuple[bool, Any]:
    try:
        async with asyncio.timeout(seconds):
            return True, await check() or "ok"
    except Exception as exc:  # a failing check is a report, not an error
        return False, f"{type(exc).__name__}: {exc}"[:300]


def health_handlers(
    checks: Mapping[str, Check],
    *,
    reports: Mapping[str, Check] | None = None,
    timeout: float = 2.0,
) -> list[HTTPRouteHandler]:
    """`checks` must pass for readiness; `reports` (a lag, say) are shown but never fail it."""
    reports = reports or {}

    @get("/health", operation_id="health", tags=["health"], sync_to_thread=False)
    def live() -> Health:
        """The process is up."""
        return Health(status="ok")

    not_ready = ResponseSpec(Health, description="A dependency does not answer")

    @get("/health/ready", operation_id="ready", tags=["health"], responses={503: not_ready})
    async def ready() -> Response[Health]:
        """Every dependency answers; 503 with the failing checks otherwise."""
        named = {**checks, **reports}
        results = await asyncio.gather(*(_run(c, timeout) for c in named.values()))
        report = {name: detail for name, (_, detail) in zip(named, results, strict=True)}
        ok = all(passed for name, (passed, _) in zip(named, results, strict=True) if name in checks)
        body = Health(status="ok" if ok else "unavailable", checks=report)
        return Response(body, status_code=200 if ok else 503)

    return [live, ready]
