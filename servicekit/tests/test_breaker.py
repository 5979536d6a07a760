"""The circuit breaker's states, driven by a clock the test controls."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from servicekit.breaker import CircuitBreaker, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(threshold=3, reset_after=5.0, clock=clock)


def test_the_circuit_opens_after_the_threshold_of_consecutive_failures() -> None:
    cb = breaker(Clock())
    for _ in range(2):
        cb.record_failure()
    cb.before_call()  # still closed

    cb.record_failure()

    assert cb.state == "open"
    with pytest.raises(CircuitOpenError) as refused:
        cb.before_call()
    assert refused.value.retry_after == pytest.approx(5.0)


def test_a_success_resets_the_failure_count() -> None:
    cb = breaker(Clock())
    cb.record_failure()
    cb.record_failure()

    cb.record_success()
    cb.record_failure()

    assert cb.state == "closed"


def test_after_the_reset_time_a_trial_call_is_let_through() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()

    clock.now += 5.1

    assert cb.state == "half-open"
    cb.before_call()


def test_a_failed_trial_opens_the_circuit_again_and_a_good_one_closes_it() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 5.1

    cb.record_failure()
    assert cb.state == "open"

    clock.now += 5.1
    cb.record_success()
    assert cb.state == "closed"


def test_its_metric_shows_the_state_of_its_last_call() -> None:
    clock = Clock()
    cb = CircuitBreaker(threshold=2, reset_after=5.0, clock=clock, name="test-breaker-metric")

    def shown() -> float | None:
        return REGISTRY.get_sample_value(
            "ordersystem_circuit_breaker_state", {"breaker": "test-breaker-metric"}
        )

    assert shown() == 0  # closed
    cb.record_failure()
    cb.record_failure()
    assert shown() == 2  # open
    clock.now += 5.0
    cb.before_call()
    assert shown() == 1  # half-open: this call is the trial
    cb.record_success()
    assert shown() == 0
