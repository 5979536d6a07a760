"""The customer-service client against real sockets: bounded waits, retries, the breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from order_service.customers import (
    CustomerNotFoundError,
    CustomerServiceClient,
    CustomerServiceUnavailableError,
)
from servicekit.breaker import CircuitBreaker
from tests.peers import ScriptedPeer
from tests.support import free_port


@pytest.fixture
def peer() -> Iterator[ScriptedPeer]:
    scripted = ScriptedPeer().start()
    yield scripted
    scripted.stop()


def client_for(url: str, threshold: int = 5) -> CustomerServiceClient:
    return CustomerServiceClient(
        url,
        connect_timeout=0.3,
        read_timeout=0.5,
        breaker=CircuitBreaker(threshold=threshold, reset_after=30),
    )


async def test_a_customer_is_read(peer: ScriptedPeer) -> None:
    client = client_for(peer.url)

    customer = await client.get(1)

    assert (customer.id, customer.customer_name) == (1, "Ada")
    await client.aclose()


async def test_a_404_means_the_customer_does_not_exist(peer: ScriptedPeer) -> None:
    peer.status, peer.body = 404, b"{}"
    client = client_for(peer.url)

    with pytest.raises(CustomerNotFoundError):
        await client.get(9)
    assert client.breaker.state == "closed"
    await client.aclose()


@pytest.mark.parametrize(("status", "body"), [(500, b"{}"), (200, b"not json"), (200, b"{}")])
async def test_an_error_or_an_unreadable_answer_means_unavailable(
    peer: ScriptedPeer, status: int, body: bytes
) -> None:
    peer.status, peer.body = status, body
    client = client_for(peer.url)

    with pytest.raises(CustomerServiceUnavailableError):
        await client.get(1)
    await client.aclose()


async def test_a_hanging_customer_service_is_given_up_on_within_the_read_timeout(
    peer: ScriptedPeer,
) -> None:
    peer.hang = True
    client = client_for(peer.url)

    started = time.monotonic()
    with pytest.raises(CustomerServiceUnavailableError):
        await client.get(1)

    assert time.monotonic() - started < 1.5
    await client.aclose()


async def test_a_refused_connection_is_retried_once_then_unavailable() -> None:
    client = client_for(f"http://127.0.0.1:{free_port()}")

    started = time.monotonic()
    with pytest.raises(CustomerServiceUnavailableError):
        await client.get(1)

    assert time.monotonic() - started < 1.5
    await client.aclose()


async def test_once_the_circuit_is_open_calls_fail_fast_without_a_request(
    peer: ScriptedPeer,
) -> None:
    peer.status = 503
    client = client_for(peer.url, threshold=2)
    for _ in range(2):
        with pytest.raises(CustomerServiceUnavailableError):
            await client.get(1)
    sent = peer.requests

    with pytest.raises(CustomerServiceUnavailableError) as refused:
        await client.get(1)

    assert peer.requests == sent
    assert refused.value.retry_after >= 1
    await client.aclose()


async def test_concurrent_lookups_of_one_customer_share_one_request(peer: ScriptedPeer) -> None:
    client = client_for(peer.url)

    found = await asyncio.gather(*(client.get(1) for _ in range(20)))

    assert {c.id for c in found} == {1}
    assert peer.requests == 1
    await client.aclose()


async def test_a_found_customer_is_reused_while_fresh_and_asked_again_after(
    peer: ScriptedPeer,
) -> None:
    client = CustomerServiceClient(
        peer.url,
        connect_timeout=0.3,
        read_timeout=0.5,
        breaker=CircuitBreaker(),
        cache_ttl=60,
    )
    await client.get(1)
    await client.get(1)
    assert peer.requests == 1

    client.cache_ttl = 0
    client._cache.clear()
    await client.get(1)
    assert peer.requests == 2
    await client.aclose()


async def test_a_missing_customer_is_not_remembered(peer: ScriptedPeer) -> None:
    peer.status, peer.body = 404, b"{}"
    client = client_for(peer.url)
    client.cache_ttl = 60

    for _ in range(2):
        with pytest.raises(CustomerNotFoundError):
            await client.get(9)

    assert peer.requests == 2
    await client.aclose()


async def test_the_service_token_is_sent_when_configured(peer: ScriptedPeer) -> None:
    client = CustomerServiceClient(
        peer.url, connect_timeout=0.3, read_timeout=0.5, breaker=CircuitBreaker(), token="t0k"
    )

    await client.get(1)

    assert b"authorization: bearer t0k" in peer.last_head.lower()
    await client.aclose()
