"""The database gate alone, on a clock the test moves: shut by failure, one probe per interval."""

from __future__ import annotations

import pytest

from servicekit.failfast import DatabaseGate, DatabaseUnavailableError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_is_open_until_a_failure_then_refuses_with_a_retry_after() -> None:
    clock = Clock()
    gate = DatabaseGate(probe_every=1.0, clock=clock)
    gate.enter()

    gate.failed("cannot connect")

    assert not gate.is_open
    with pytest.raises(DatabaseUnavailableError) as refused:
        gate.enter()
    assert refused.value.retry_after == pytest.approx(1.0)
    assert "cannot connect" in str(refused.value)


def test_a_closed_gate_lets_one_probe_through_per_interval_and_opens_on_its_success() -> None:
    clock = Clock()
    gate = DatabaseGate(probe_every=1.0, clock=clock)
    gate.failed("cannot connect")
    clock.now += 1.0

    gate.enter()  # the probe
    with pytest.raises(DatabaseUnavailableError):
        gate.enter()  # everyone else, while the probe is out

    gate.succeeded()
    gate.enter()
    gate.enter()
    assert gate.is_open


def test_a_failed_probe_keeps_the_gate_closed_for_another_interval() -> None:
    clock = Clock()
    gate = DatabaseGate(probe_every=1.0, clock=clock)
    gate.failed("cannot connect")
    clock.now += 1.0
    gate.enter()

    gate.failed("cannot connect")

    with pytest.raises(DatabaseUnavailableError):
        gate.enter()
    clock.now += 1.0
    gate.enter()
