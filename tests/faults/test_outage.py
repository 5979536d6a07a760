"""The fault harness's outage: the longest spell without a 201 while orders were sent."""

from __future__ import annotations

from tests.faults.harness import Load, longest_outage


def test_the_time_a_step_held_the_orders_back_is_not_an_outage() -> None:
    load = Load(created_at=[1.0, 2.0, 9.0, 10.0], ended=10.5, paused=[(3.0, 8.0)])

    assert longest_outage(load, since=2.0) == 2.0  # 2 to 9, less the 5 s held back


def test_no_201_after_the_fault_is_an_outage_to_the_end() -> None:
    load = Load(created_at=[1.0], ended=7.0)

    assert longest_outage(load, since=3.0) == 4.0
