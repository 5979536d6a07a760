"""docs/reliability.md's writer: each part rewritten from its own figures, the rest kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.faults.report import HOSTS_MARKER, NOTES_MARKER, render

WHEN = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def row(scenario: str, **extra: Any) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "orders": 2000,
        "created": 1990,
        "refused": {"502": 10},
        "refused_codes": {"502 upstream_failed": 10},
        "slowest_refusal": 0.4,
        "stored_though_refused": 1,
        "counted": 1991,
        "duplicates_absorbed": 7,
        "settled": 1991,
        "unanswered": 0,
        "lost": 0,
        "seconds": 41.3,
        **extra,
    }


def test_each_part_is_rewritten_from_its_figures_and_the_rest_is_kept() -> None:
    one_machine = render([row("kill -9 relay")], WHEN, "", hosts=False)
    notes = NOTES_MARKER + "\n- written by hand\n"
    hosts = [row("app host killed", outage=3.3, recovery=7.5)]
    across = render(hosts, WHEN, one_machine + notes, hosts=True)

    assert "| kill -9 relay | 1 | 2,000 | 1,990 | 10 x 502 upstream_failed |" in across
    assert "| app host killed | 1 |" in across
    assert "| 0 | 0 | 3.3 s | 7.5 s | 41.3 |" in across
    assert across.endswith(notes)  # the notes survive, below both parts
    assert across.index(HOSTS_MARKER) < across.index(NOTES_MARKER)

    again = render([row("kill -9 projector")], WHEN, across, hosts=False)
    assert "kill -9 relay" not in again  # that part rewritten
    assert "| app host killed | 1 |" in again  # the other kept
    assert "| 0 | 0 | - | - | 41.3 |" in again  # no outage or recovery measured: none shown
    assert again.endswith(notes)
