"""The fault suite's harness: load through the whole system, a fault, then the invariants.

Every scenario drives orders over HTTP, injects its fault a third of the way in (and heals
it two thirds in), lets the system settle, and checks that nothing acknowledged was lost:
every 201 is stored, counted exactly once (and `verify` agrees) and settled by exactly one
payment outcome. FAULT_ORDERS sets the load (`make faults` uses 5,000; `make test` a short
form); FAULT_PARTITIONS the order log's layouts each scenario runs in (default 1,4: as
ever, and in four partitions shared by two projector processes); FAULT_REPORT names a file
that collects one line of figures per scenario.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import psycopg

from tests.e2e.conftest import System
from tests.support import ordersystem

ORDERS = int(os.environ.get("FAULT_ORDERS", "150"))
# The order log's layouts each scenario runs in: `make test` both, `make faults` one.
LAYOUTS = [int(p) for p in os.environ.get("FAULT_PARTITIONS", "1,4").split(",")]
Step = Callable[[], Awaitable[Any] | Any]  # what it returns is awaited when awaitable


@dataclass
class Load:
    created: list[str] = field(default_factory=list)  # ids acknowledged with a 201
    refused: dict[int, int] = field(default_factory=dict)  # status -> count (503s, say)
    refused_codes: dict[str, int] = field(default_factory=dict)  # "503 code" -> count
    errors: int = 0  # connection errors, timeouts: a request the system never answered
    slowest_refusal: float = 0.0  # seconds: a refusal must be fast, not a hang
    not_problems: int = 0  # refusals whose body is not problem details (RFC 9457)
    created_after_steps: int = 0  # 201s to orders sent once the last step was done

    def refusal(self, response: httpx.Response, took: float) -> None:
        status = response.status_code
        self.refused[status] = self.refused.get(status, 0) + 1
        self.slowest_refusal = max(self.slowest_refusal, took)
        if is_problem(response):
            key = f"{status} {response.json().get('code', '')}"
        else:
            self.not_problems += 1
            key = f"{status} (not a problem document)"
        self.refused_codes[key] = self.refused_codes.get(key, 0) + 1


@dataclass
class Figures:
    scenario: str
    orders: int
    created: int
    refused: dict[int, int]
    refused_codes: dict[str, int]
    unanswered: int
    slowest_refusal: float
    stored: int
    stored_though_refused: int  # committed, but the connection died before the client heard
    counted: int
    duplicates_absorbed: int
    settled: int
    payment_outcomes: int
    lost: int
    seconds: float


def body(n: int) -> dict[str, Any]:
    price = "1200.00" if n % 7 == 0 else "19.99"  # some payments fail, their orders cancel
    return {"customer_id": 1 + n % 5, "product_name": "fault load", "quantity": 1, "price": price}


async def perform(step: Step) -> None:
    """Run a step off the event loop (stopping a process waits for it to exit), so requests
    in flight are answered meanwhile; an awaitable it returns is awaited on the loop."""
    result = await asyncio.to_thread(step)
    if inspect.isawaitable(result):
        await result


async def drive(system: System, count: int, steps: dict[int, Step]) -> Load:
    """`count` orders, 16 at a time; steps[k] runs once k orders have been answered.

    No new order is sent while a step runs, so each step is in place for the orders after
    it, whatever the step's own duration: a fault is there for the middle third and
    healed for the last, and `created_after_steps` counts what was created once all had run.
    """
    load = Load()
    answered = 0
    lock = asyncio.Lock()
    steps_done = asyncio.Event()
    sending = asyncio.Event()
    sending.set()
    if not steps:
        steps_done.set()
    numbers = iter(range(count))
    async with httpx.AsyncClient(base_url=system.orders.url, timeout=10) as client:

        async def worker() -> None:
            nonlocal answered
            for n in numbers:
                await sending.wait()
                after_steps = steps_done.is_set()
                try:
                    sent = time.monotonic()
                    response = await client.post("/api/v1/orders", json=body(n))
                    if response.status_code == 201:
                        load.created.append(response.json()["id"])
                        load.created_after_steps += after_steps
                    else:
                        load.refusal(response, time.monotonic() - sent)
                except httpx.HTTPError:
                    load.errors += 1
                async with lock:
                    answered += 1
                    step = steps.pop(answered, None)
                    if step is not None:
                        sending.clear()
                if step is not None:
                    await perform(step)
                    if not steps:
                        steps_done.set()
                    sending.set()

        await asyncio.gather(*(worker() for _ in range(16)))
    return load


def is_problem(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/problem+json")


def _one(system: System, database: str, sql: str) -> int:
    settings = system.orders_db if database == "orders" else system.customers_db
    if database == "payments":
        settings = system.payments_db
    with psycopg.connect(settings.conninfo()) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0


def snapshot(system: System) -> dict[str, int]:
    """What the stores say now."""
    return {
        "stored": _one(system, "orders", "SELECT count(*) FROM order_summaries"),
        "counted": _one(system, "customers", "SELECT sum(orders_count) FROM orders_count"),
        "duplicates": _one(  # over the partitions, if any
            system,
            "customers",
            "SELECT sum(duplicates) FROM projection_positions"
            " WHERE name = 'orders_count' OR starts_with(name, 'orders_count/')",
        ),
        "pending": _one(
            system,
            "orders",
            "SELECT count(*) FROM order_summaries WHERE payment_status = 'pending'",
        ),
        "payments": _one(
            system, "payments", "SELECT count(DISTINCT originator_id) FROM payments_events"
        ),
        "outcomes": _one(
            system,
            "orders",
            "SELECT count(*) FROM orders_events"
            " WHERE topic LIKE '%Order.Paid' OR topic LIKE '%Order.PaymentFailed'",
        ),
        "unpaid_or_twice": _one(
            system,
            "orders",
            "SELECT count(*) FROM (SELECT originator_id FROM orders_events"
            " WHERE topic LIKE '%Order.Paid' OR topic LIKE '%Order.PaymentFailed'"
            " GROUP BY originator_id HAVING count(*) <> 1) twice",
        ),
    }


async def settle(system: System, created: int, within: float = 120) -> dict[str, int]:
    """Wait until every stored order is counted and settled by its payment."""
    deadline = time.monotonic() + within
    while True:
        now = await asyncio.to_thread(snapshot, system)
        if now["counted"] >= now["stored"] >= created and now["pending"] == 0:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled within {within}s: {now}")
        await asyncio.sleep(0.2)  # a whole system settling: there is no single signal


def verify(system: System) -> subprocess.CompletedProcess[str]:
    return ordersystem("verify", "orders-count", env=system.projector_env(), timeout=300)


def acknowledged_and_stored(system: System, ids: list[str]) -> int:
    """How many of the orders answered with a 201 are in the store."""
    with psycopg.connect(system.orders_db.conninfo()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM order_summaries WHERE id = ANY(%s::uuid[])", (ids,)
        ).fetchone()
        return int(row[0]) if row else 0


async def run_scenario(
    system: System,
    name: str,
    fault: Step,
    heal: Step | None = None,
    *,
    orders: int = ORDERS,
    commits_may_go_unheard: bool = False,
    refusals: frozenset[str] = frozenset(),
) -> Figures:
    """Load, fault at a third, heal at two thirds, settle, check; the figures.

    `refusals` names the problems ("503 database_unavailable", say) the fault may cause;
    any other refusal fails the scenario, told apart by its problem code.

    With `commits_may_go_unheard` (the database itself goes away), an order may be stored
    whose client was answered 503: its COMMIT went through and the connection died before
    the answer came back, which no client of any database can tell from a failure. Such a
    client learns the outcome by retrying with the same Idempotency-Key. These orders must
    still be counted and settled exactly once, like every other stored one.
    """
    started = time.monotonic()
    before = await asyncio.to_thread(snapshot, system)
    steps: dict[int, Step] = {max(1, orders // 3): fault}
    if heal is not None:
        steps[max(2, 2 * orders // 3)] = heal
    load = await drive(system, orders, steps)
    after = await settle(system, before["stored"] + len(load.created))
    checked = await asyncio.to_thread(verify, system)
    acknowledged = await asyncio.to_thread(acknowledged_and_stored, system, load.created)
    stored = after["stored"] - before["stored"]
    figures = Figures(
        scenario=name,
        orders=orders,
        created=len(load.created),
        refused=load.refused,
        refused_codes=load.refused_codes,
        unanswered=load.errors,
        slowest_refusal=load.slowest_refusal,
        stored=stored,
        stored_though_refused=stored - acknowledged,
        counted=after["counted"] - before["counted"],
        duplicates_absorbed=after["duplicates"] - before["duplicates"],
        settled=after["outcomes"] - before["outcomes"],
        payment_outcomes=after["payments"] - before["payments"],
        lost=len(load.created) - acknowledged,
        seconds=time.monotonic() - started,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert figures.lost == 0, figures
    assert figures.unanswered == 0, figures  # every request answered, none hung or dropped
    assert load.not_problems == 0, load  # every refusal says why, as problem details
    assert set(load.refused_codes) <= refusals, figures  # and for a reason the fault explains
    if heal is not None:
        assert load.created_after_steps > 0, figures  # orders flowed again once healed
    unheard_limit = load.refused.get(503, 0) if commits_may_go_unheard else 0
    assert 0 <= figures.stored_though_refused <= unheard_limit, figures
    assert figures.counted == figures.stored, figures  # each stored order counted exactly once
    assert figures.settled == figures.stored, figures  # each settled by one outcome
    assert figures.payment_outcomes == figures.stored, figures  # one payment per order
    assert after["unpaid_or_twice"] == 0, after
    report(figures)
    return figures


def report(figures: Figures) -> None:
    path = os.environ.get("FAULT_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(figures)) + "\n")
