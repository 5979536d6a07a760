"""Write docs/reliability.md from the figures the fault suite collected (FAULT_REPORT)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HEADER = """# Reliability

Each scenario drives orders through every process of the system (three APIs, both relays,
both projectors, the payment processor, the payment-results consumer), injects its fault a
third of the way into the load, heals it two thirds in, lets the system settle, and then
checks: every order acknowledged with a 201 is stored, counted exactly once in orders_count
(and `verify orders-count` exits 0), and settled by exactly one payment outcome (one payment
per order, one Paid or PaymentFailed event on it). It also checks that every request was
answered, and every refusal as problem details. `lost` is acknowledged orders not stored;
`duplicates absorbed` is messages the orders_count projection dropped by position;
`refused` gives each refusal's status and problem code, so an unexpected one stands out
(each scenario names the refusals its fault may cause; any other fails it); `slowest
refusal` is the longest a refused request waited for its answer. No new order is sent
while a fault or its healing is being put in place (both run off the test's event loop,
so requests in flight are answered meanwhile), and each scenario with a healing step
checks that orders were created again after it.
`stored though refused` is orders whose COMMIT went through while Postgres was shutting
down, after which the connection died before the answer reached the order service, so the
client got a 503: no client of any database can tell that from a failure. Such an order is
still counted and settled exactly once, and a client that retries with the same
`Idempotency-Key` gets it back instead of a second order. Only the Postgres scenario allows
them (at most one per 503); everywhere else there must be none.

In the Postgres scenario the database is stopped a third of the way in and started two
thirds in; while it is down, every API is also asked for a read and must answer a 503
problem within 6 s (`servicekit/tests/test_failfast.py` holds both kinds of pool to 2 s for
the first refusal and 0.5 s for the next; `docs/decisions/0009-fail-fast-database.md`).
Order creation is refused there by the customer lookup: the customer service has lost its
database too, and its pool fails fast the same way. With the customer service stopped, the
slowest refusals are the order service's attempts to reach it (0.5 s connect timeout, one
retry) before its circuit opens. Because the load's five customers may all be in the
order service's cache for the whole outage, that scenario also asks, once stopped and
once restarted, for an order for a customer no one has: it must be a fast 503 while the
customer service is down and a 422 `customer_not_found` once it is back.

Reproduce with `make faults` (5,000 orders per scenario, the suite three times in a row);
`make test` runs the same scenarios with 150 orders each.
"""


NOTES_MARKER = "\n## Notes\n"


def render(rows: list[dict[str, Any]], measured: datetime) -> str:
    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_scenario[row["scenario"]].append(row)
    lines = [
        HEADER,
        f"Figures from {measured:%Y-%m-%d %H:%M} UTC, {len(rows)} scenario runs:",
        "",
        "| scenario | run | orders sent | created | refused | slowest refusal"
        " | stored though refused | counted | duplicates absorbed | settled by payment"
        " | unanswered | lost | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario, runs in by_scenario.items():
        for number, r in enumerate(runs, 1):
            refused = ", ".join(f"{n:,} x {why}" for why, n in r["refused_codes"].items()) or "0"
            slowest = f"{r['slowest_refusal']:.2f} s" if r["refused"] else "-"
            lines.append(
                f"| {scenario} | {number} | {r['orders']:,} | {r['created']:,} | {refused} |"
                f" {slowest} | {r['stored_though_refused']} | {r['counted']:,} |"
                f" {r['duplicates_absorbed']:,} |"
                f" {r['settled']:,} | {r['unanswered']} | {r['lost']} | {r['seconds']:.1f} |"
            )
    lines.append("")
    return "\n".join(lines)


def main(source: str, target: str) -> int:
    rows = [json.loads(line) for line in Path(source).read_text().splitlines() if line]
    measured = datetime.fromtimestamp(Path(source).stat().st_mtime, UTC)  # the last run's end
    page = render(rows, measured)
    existing = Path(target).read_text() if Path(target).exists() else ""
    if NOTES_MARKER in existing:  # the hand-written notes below the figures survive
        page += NOTES_MARKER + existing.split(NOTES_MARKER, 1)[1]
    Path(target).write_text(page)
    print(f"wrote {target} from {len(rows)} scenario runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
