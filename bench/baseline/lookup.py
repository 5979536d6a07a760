"""How the baseline's order API finds a customer (benchmark fixture): from the customers
table or the customer API, shared by concurrent requests and kept briefly, as ours does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from bench.baseline.http import ProblemError


class Customer(msgspec.Struct, frozen=True):
    id: int
    customer_name: str
    address: str
    orders_count: int


Fetch = Callable[[int], Awaitable[Customer | None]]
SELECT_CUSTOMER = "SELECT id, customer_name, address, orders_count FROM customers WHERE id = %s"


class CachedLookup:
    """One fetch per customer at a time; a found customer is reused for `ttl` seconds."""

    def __init__(self, fetch: Fetch, ttl: float) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._cache: dict[int, tuple[float, Customer]] = {}
        self._in_flight: dict[int, asyncio.Future[Customer | None]] = {}

    async def get(self, customer_id: int) -> Customer | None:
        now = time.monotonic()
        hit = self._cache.get(customer_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._in_flight.get(customer_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(customer_id))
            self._in_flight[customer_id] = pending
            pending.add_done_callback(lambda _: self._in_flight.pop(customer_id, None))
        customer = await asyncio.shield(pending)
        if customer is not None and self.ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[customer_id] = (now + self.ttl, customer)
        return customer


def from_table(pool: AsyncConnectionPool[AsyncConnection[Any]]) -> Fetch:
    """Read the customer service's table directly (a pool on its database)."""

    async def fetch(customer_id: int) -> Customer | None:
        async with pool.connection() as conn:
            cursor = await conn.execute(SELECT_CUSTOMER, (customer_id,))
            row = await cursor.fetchone()
        return Customer(*row) if row else None

    return fetch


_decode_customer = msgspec.json.Decoder(Customer).decode


def from_api(session: aiohttp.ClientSession) -> Fetch:
    """Ask the customer API over HTTP (aiohttp: keep-alive connections, bounded waits)."""

    async def fetch(customer_id: int) -> Customer | None:
        try:
            async with session.get(f"/api/v1/customers/{customer_id}") as response:
                if response.status == 404:
                    return None
                if response.status == 200:
                    return _decode_customer(await response.read())
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError):
            pass
        raise ProblemError(
            503,
            "customer_service_unavailable",
            "The customer service cannot be reached; nothing was stored",
            headers={"Retry-After": "1"},
        )

    return fetch
