"""Write docs/reliability.md from the figures the fault suite collected (FAULT_REPORT):
`python -m tests.faults.report SOURCE TARGET` rewrites one machine's figures,
`... --across-hosts` the multi-host bed's; each keeps the other's and the notes."""

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
so requests in flight are answered meanwhile), and each scenario checks that orders
were created again after a fault that is healed.
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


HOSTS_MARKER = "\n## Across hosts\n"
NOTES_MARKER = "\n## Notes\n"

HOSTS_HEADER = """
The same checks on the multi-host bed (`tests/bed.py`, README "The multi-host bed"): each
host a network namespace with its own address and no route out; two app hosts each running
every process (`ordersystem run`, four partitions shared by the two hosts' projectors),
HAProxy in front of their APIs, a Postgres primary and its synchronous standby, and a
three-node RabbitMQ cluster. Orders go through HAProxy, each with an `Idempotency-Key`, and
an order whose answer leaves its fate open (no answer, or HAProxy's 502 or 504) is asked
again with its key (`asked again`): a stored one comes back as a 200 and counts as created.
Every Postgres connection carries TCP keepalives and `tcp_user_timeout` both ways
(`servicekit/postgres.py`), so a host cut off loses its advisory locks (a relay's
leadership, a projector's partitions) within about ten seconds, and another host's
process takes them over (`docs/decisions/0016-hosts-that-fail.md`). `outage` is the
longest spell without a 201 from the fault on, while orders were being sent (the time a
step such as a restart held them back does not count); `recovery` is the time from the
fault until every order stored before it was counted and settled. Reproduce with
`make cluster` (CLUSTER_ORDERS orders per scenario, 2,000 by default, three runs in a row,
a new bed for each); `make test` runs it with 150.
"""


def table(rows: list[dict[str, Any]]) -> list[str]:
    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_scenario[row["scenario"]].append(row)
    lines = [
        "| scenario | run | orders sent | created | refused | slowest refusal"
        " | stored though refused | counted | duplicates absorbed | settled by payment"
        " | unanswered | lost | outage | recovery | seconds |",
        "|" + " --- |" * 15,
    ]
    for scenario, runs in by_scenario.items():
        for number, r in enumerate(runs, 1):
            refused = ", ".join(f"{n:,} x {why}" for why, n in r["refused_codes"].items()) or "0"
            slowest = f"{r['slowest_refusal']:.2f} s" if r["refused"] else "-"
            unanswered = f"{r['unanswered']}" + (
                f" ({r['retried']:,} asked again)" if r.get("retried") else ""
            )
            spells = [f"{r[k]:.1f} s" if k in r else "-" for k in ("outage", "recovery")]
            lines.append(
                f"| {scenario} | {number} | {r['orders']:,} | {r['created']:,} | {refused} |"
                f" {slowest} | {r['stored_though_refused']} | {r['counted']:,} |"
                f" {r['duplicates_absorbed']:,} |"
                f" {r['settled']:,} | {unanswered} | {r['lost']} | {spells[0]} |"
                f" {spells[1]} | {r['seconds']:.1f} |"
            )
    return lines


def figures(rows: list[dict[str, Any]], measured: datetime) -> str:
    lines = [f"Figures from {measured:%Y-%m-%d %H:%M} UTC, {len(rows)} scenario runs:", ""]
    return "\n".join([*lines, *table(rows), ""])


def render(rows: list[dict[str, Any]], measured: datetime, existing: str, hosts: bool) -> str:
    """The page with one part rewritten from `rows`: one machine's figures, or (`hosts`)
    the multi-host bed's; the other part and the notes below them are kept as they were."""
    body, notes = existing, ""
    if NOTES_MARKER in body:
        body, notes = body.split(NOTES_MARKER, 1)
        notes = NOTES_MARKER + notes
    single, across = body, ""
    if HOSTS_MARKER in body:
        single, across = body.split(HOSTS_MARKER, 1)
        across = HOSTS_MARKER + across
    if hosts:
        across = HOSTS_MARKER + HOSTS_HEADER + "\n" + figures(rows, measured)
    else:
        single = HEADER + "\n" + figures(rows, measured)
    return single.rstrip("\n") + "\n" + across.rstrip("\n") + "\n" + notes


def main(argv: list[str]) -> int:
    source, target, *flags = argv
    rows = [json.loads(line) for line in Path(source).read_text().splitlines() if line]
    measured = datetime.fromtimestamp(Path(source).stat().st_mtime, UTC)  # the last run's end
    existing = Path(target).read_text() if Path(target).exists() else ""
    Path(target).write_text(render(rows, measured, existing, hosts="--across-hosts" in flags))
    print(f"wrote {target} from {len(rows)} scenario runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
