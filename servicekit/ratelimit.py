"""A per-client request rate limit for the APIs: token buckets, answered with a 429 problem.

Each client address has a bucket of `rate` tokens that refills at `rate` per second; a
request takes one, and a request that finds it empty is answered 429 with Retry-After,
before any handler runs. Health checks and the OpenAPI document are never limited. Behind
a proxy every client shares the proxy's address: set the limit for the proxy, or off.

Litestar's own RateLimitMiddleware keeps every request's timestamp and re-encodes them as
JSON on each request (O(limit) per request, under one lock); a bucket is two numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from servicekit.problems import PROBLEM_MEDIA_TYPE, ProblemError

UNLIMITED_PREFIXES = ("/health", "/schema")


class TokenBuckets:
    """`rate` requests per second per client, in bursts of up to `rate` (at least one)."""

    def __init__(
        self, rate: float, *, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, as of)

    def take(self, client: str) -> float:
        """0 when the client may go ahead (a token is taken); else seconds until it may."""
        now = self.clock()
        tokens, as_of = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - as_of) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
        if client not in self._buckets and len(self._buckets) >= self.max_clients:
            self._forget_idle(now)
        self._buckets[client] = (tokens - 1, now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        """Drop clients whose bucket has refilled: they are where a new client starts."""
        full_after = self.burst / self.rate  # by then a bucket has refilled completely
        self._buckets = {
            client: state for client, state in self._buckets.items() if now - state[1] < full_after
        }


def api_middleware(requests_per_second: float) -> list[Callable[[ASGIApp], ASGIApp]]:
    """The middleware every API runs: the rate limit, unless it is 0 (off)."""
    return [rate_limit(requests_per_second)] if requests_per_second > 0 else []


def rate_limit(requests_per_second: float) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware (Litestar's `middleware=[...]`) limiting each client address."""
    buckets = TokenBuckets(requests_per_second)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["path"].startswith(UNLIMITED_PREFIXES):
                await app(scope, receive, send)
                return
            client = scope.get("client")
            wait = buckets.take(client[0] if client else "")
            if wait == 0:
                await app(scope, receive, send)
                return
            await _too_many_requests(scope, send, retry_after=math.ceil(wait))

        return limited

    return middleware


async def _too_many_requests(scope: Scope, send: Send, *, retry_after: int) -> None:
    error = ProblemError(
        429,
        "too_many_requests",
        "Too many requests from this client",
        f"retry in {retry_after} s",
    )
    body = msgspec.json.encode(error.problem(instance=scope["path"]))
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 429,
        "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ],
    }
    done: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(done)
