"""An optional shared token between services: a Litestar guard, and the header to send."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

OPEN_PATHS = ("/health", "/schema", "/metrics")  # probes, the API's description, scrapes


def bearer(token: str) -> dict[str, str]:
    """The header that carries the token (none when no token is configured)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def require_token(token: str) -> list[Guard]:
    """Guards for an app: with a token set, every API call must carry it."""
    if not token:
        return []
    expected = f"Bearer {token}".encode()

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.url.path.startswith(OPEN_PATHS):
            return
        given = connection.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise NotAuthorizedException("a valid service token is required")

    return [guard]
