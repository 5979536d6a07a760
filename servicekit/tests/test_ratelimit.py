"""The per-client rate limit: token buckets on a test clock, then the middleware in an app."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from servicekit.ratelimit import TokenBuckets, api_middleware
from servicekit.tests.test_breaker import Clock


def test_a_client_may_burst_its_rate_then_waits_for_the_next_token() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, clock=clock)

    assert [buckets.take("a"), buckets.take("a")] == [0, 0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes every half second

    clock.now += 0.5
    assert buckets.take("a") == 0


def test_a_limit_below_one_a_second_still_lets_a_request_through_now_and_then() -> None:
    clock = Clock()
    buckets = TokenBuckets(0.5, clock=clock)

    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(2.0)
    clock.now += 2.0
    assert buckets.take("a") == 0


def test_clients_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(1, clock=Clock())
    buckets.take("a")

    assert buckets.take("a") > 0
    assert buckets.take("b") == 0


def test_a_bucket_never_holds_more_than_one_second_of_tokens() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, clock=clock)
    clock.now += 3600  # idle for an hour

    assert [buckets.take("a") for _ in range(3)][2] > 0


def test_idle_clients_are_forgotten_when_there_are_too_many() -> None:
    clock = Clock()
    buckets = TokenBuckets(1, max_clients=2, clock=clock)
    buckets.take("a")
    buckets.take("b")
    clock.now += 5

    buckets.take("c")

    assert buckets.take("a") == 0  # forgotten, so a full bucket again
    assert len(buckets._buckets) <= 2


@get("/api/v1/things", sync_to_thread=False)
def things() -> list[str]:
    return []


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def test_over_the_limit_a_client_gets_a_429_problem_with_retry_after() -> None:
    app = Litestar([things, health], middleware=api_middleware(3))

    with TestClient(app) as client:
        statuses = [client.get("/api/v1/things").status_code for _ in range(3)]
        refused = client.get("/api/v1/things")
        health_checks = [client.get("/health").status_code for _ in range(10)]

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["code"] == "too_many_requests"
    assert health_checks == [200] * 10  # health and the schema are never limited


def test_a_limit_of_zero_turns_it_off() -> None:
    app = Litestar([things], middleware=api_middleware(0))

    with TestClient(app) as client:
        assert {client.get("/api/v1/things").status_code for _ in range(50)} == {200}
