"""The customer-service client: one pooled connection set, bounded waits, a circuit breaker."""

from __future__ import annotations

import asyncio
import math
import time

import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport

from contracts.customers import CustomerV1
from servicekit import tracing
from servicekit.auth import bearer
from servicekit.breaker import CircuitBreaker, CircuitOpenError


class CustomerNotFoundError(Exception):
    pass


class CustomerServiceUnavailableError(Exception):
    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class CustomerServiceClient:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        breaker: CircuitBreaker,
        cache_ttl: float = 0.0,
        token: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # httpx's own async transport degrades badly under concurrency here; aiohttp's holds up.
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers=bearer(token),
            transport=transport or AiohttpTransport(),
        )
        # The whole lookup, retry included, ends within this bound.
        self._deadline = 2 * connect_timeout + read_timeout + 0.2
        self.breaker = breaker
        # Concurrent lookups of one customer share a request; a found one is kept briefly.
        self.cache_ttl = cache_ttl
        self._cache: dict[int, tuple[float, CustomerV1]] = {}
        self._in_flight: dict[int, asyncio.Future[CustomerV1]] = {}

    async def get(self, customer_id: int) -> CustomerV1:
        """The customer; CustomerNotFoundError or CustomerServiceUnavailableError otherwise."""
        cached = self._cache.get(customer_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if (shared := self._in_flight.get(customer_id)) is not None:
            return await asyncio.shield(shared)
        lookup = asyncio.ensure_future(self._lookup(customer_id))
        self._in_flight[customer_id] = lookup
        try:
            customer = await asyncio.shield(lookup)
        finally:
            self._in_flight.pop(customer_id, None)
        if self.cache_ttl > 0:
            self._cache[customer_id] = (time.monotonic() + self.cache_ttl, customer)
            if len(self._cache) > 10_000:
                self._cache.clear()
        return customer

    async def _lookup(self, customer_id: int) -> CustomerV1:
        try:
            self.breaker.before_call()
        except CircuitOpenError as open_:
            raise CustomerServiceUnavailableError(
                str(open_), math.ceil(open_.retry_after)
            ) from None
        try:
            response = await self._fetch(f"/api/v1/customers/{customer_id}")
        except (httpx.TransportError, TimeoutError) as exc:
            raise self._failed(f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 404:
            self.breaker.record_success()
            raise CustomerNotFoundError(customer_id)
        if response.status_code != 200:
            raise self._failed(f"customer service answered {response.status_code}")
        try:
            customer = msgspec.json.decode(response.content, type=CustomerV1)
        except msgspec.DecodeError as exc:
            raise self._failed(f"unreadable customer: {exc}") from None
        self.breaker.record_success()
        return customer

    async def _fetch(self, path: str) -> httpx.Response:
        # Traced, the lookup continues the request's trace in the customer API.
        traceparent = tracing.current_traceparent()
        headers = {tracing.TRACEPARENT: traceparent} if traceparent else None
        async with asyncio.timeout(self._deadline):
            try:
                return await self._http.get(path, headers=headers)
            except httpx.ConnectError:  # one retry: the connection never got going
                return await self._http.get(path, headers=headers)

    def _failed(self, reason: str) -> CustomerServiceUnavailableError:
        self.breaker.record_failure()
        return CustomerServiceUnavailableError(reason)

    async def aclose(self) -> None:
        await self._http.aclose()
