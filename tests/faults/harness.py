"""The fault suite's harness: load through the whole system, a fault, then the invariants.

Every scenario drives orders over HTTP, injects its fault a third of the way in (and heals
it two thirds in), lets the system settle, and checks that nothing acknowledged was lost:
every 201 is stored, counted exactly once (and `verify` agrees) and settled by exactly one
payment outcome. FAULT_ORDERS sets the load (`make faults` uses 5,000; `make test` a short
form); FAULT_PARTITIONS the order log's layouts each scenario runs in (default 1,4: as
ever, and in four partitions shared by two projector processes); FAULT_REPORT names a file
that collects one line of figures per scenario. The system is one machine's
(tests.e2e.conftest) or the multi-host bed's (tests.cluster): anything `System` describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx
import psycopg

from servicekit.postgres import PostgresSettings
from tests.support import ordersystem

ORDERS = int(os.environ.get("FAULT_ORDERS", "150"))
# The order log's layouts each scenario runs in: `make test` both, `make faults` one.
LAYOUTS = [int(p) for p in os.environ.get("FAULT_PARTITIONS", "1,4").split(",")]
Step = Callable[[], Awaitable[Any] | Any]  # what it returns is awaited when awaitable
RETRIES, RETRY_AFTER = 5, 0.2  # a retrying client's attempts after the first; seconds apart
REFUSED_UNHEARD = (502, 503, 504)  # answers after which a commit may still have gone through


class Reachable(Protocol):
    @property
    def url(self) -> str: ...


class System(Protocol):
    """What a scenario drives and checks: one machine's processes (tests.e2e.conftest.System)
    or the multi-host bed's (tests.cluster)."""

    @property
    def orders(self) -> Reachable: ...
    @property
    def orders_db(self) -> PostgresSettings: ...
    @property
    def customers_db(self) -> PostgresSettings: ...
    @property
    def payments_db(self) -> PostgresSettings: ...
    def projector_env(self) -> dict[str, str]: ...


@dataclass
class Load:
    created: list[str] = field(default_factory=list)  # ids acknowledged with a 201
    refused: dict[int, int] = field(default_factory=dict)  # status -> count (503s, say)
    refused_codes: dict[str, int] = field(default_factory=dict)  # "503 code" -> count
    errors: int = 0  # connection errors, timeouts: a request the system never answered
    error_kinds: dict[str, int] = field(default_factory=dict)  # exception name -> count
    retried: int = 0  # requests asked again with their Idempotency-Key (`retry`)
    slowest_refusal: float = 0.0  # seconds: a refusal must be fast, not a hang
    not_problems: int = 0  # refusals whose body is not problem details (RFC 9457)
    created_after_steps: int = 0  # 201s to orders sent once the last step was done
    created_at: list[float] = field(default_factory=list)  # monotonic time of each 201
    ended: float = 0.0  # monotonic time of the last answer
    paused: list[tuple[float, float]] = field(default_factory=list)  # no order sent: steps

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
    retried: int
    slowest_refusal: float
    stored: int
    stored_though_refused: int  # committed, but the connection died before the client heard
    counted: int
    duplicates_absorbed: int
    settled: int
    payment_outcomes: int
    lost: int
    seconds: float
    outage: float  # seconds: the longest spell without a 201 from the fault on, while sending
    recovery: float  # seconds from the fault until what was stored before it is all applied


def body(n: int) -> dict[str, Any]:
    price = "1200.00" if n % 7 == 0 else "19.99"  # some payments fail, their orders cancel
    return {"customer_id": 1 + n % 5, "product_name": "fault load", "quantity": 1, "price": price}


async def perform(step: Step) -> None:
    """Run a step off the event loop (stopping a process waits for it to exit), so requests
    in flight are answered meanwhile; an awaitable it returns is awaited on the loop."""
    result = await asyncio.to_thread(step)
    if inspect.isawaitable(result):
        await result


async def place(client: httpx.AsyncClient, n: int, load: Load, retry: bool) -> httpx.Response:
    """Order number `n`. With `retry`, as a careful client across a proxy does: it carries
    an Idempotency-Key, and an answer that leaves its fate open (no answer, or the proxy's
    502 or 504) is asked again with that key, which returns the order if it was stored."""
    if not retry:
        return await client.post("/api/v1/orders", json=body(n))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(RETRIES + 1):
        last = attempt == RETRIES
        try:
            response = await client.post("/api/v1/orders", json=body(n), headers=key)
        except httpx.HTTPError:
            if last:
                raise
        else:
            if last or response.status_code not in (502, 504):
                return response
        load.retried += 1
        await asyncio.sleep(RETRY_AFTER)  # a client's backoff: the proxy finds a live host
    raise AssertionError("unreachable")  # the last attempt returned or raised


async def drive(system: System, count: int, steps: dict[int, Step], retry: bool = False) -> Load:
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
                    response = await place(client, n, load, retry)
                    if response.status_code in (200, 201):  # 200: stored by an earlier try
                        load.created.append(response.json()["id"])
                        load.created_at.append(time.monotonic())
                        load.created_after_steps += after_steps
                    else:
                        load.refusal(response, time.monotonic() - sent)
                except httpx.HTTPError as error:
                    load.errors += 1
                    kind = type(error).__name__
                    load.error_kinds[kind] = load.error_kinds.get(kind, 0) + 1
                async with lock:
                    answered += 1
                    step = steps.pop(answered, None)
                    if step is not None:
                        sending.clear()
                if step is not None:
                    began = time.monotonic()
                    await perform(step)
                    load.paused.append((began, time.monotonic()))
                    if not steps:
                        steps_done.set()
                    sending.set()

        await asyncio.gather(*(worker() for _ in range(16)))
    load.ended = time.monotonic()
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


def _stored_by_customer(system: System, up_to: int | None) -> tuple[int, dict[int, int]]:
    """The newest order's sequence number, and the orders per customer up to `up_to` (or
    up to the newest)."""
    with psycopg.connect(system.orders_db.conninfo()) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM order_summaries").fetchone()
        newest = int(row[0]) if row else 0
        rows = conn.execute(
            "SELECT customer_id, count(*) FROM order_summaries WHERE seq <= %s"
            " GROUP BY customer_id",
            (newest if up_to is None else up_to,),
        ).fetchall()
    return newest, {int(c): int(n) for c, n in rows}


def _caught_up(system: System, mark: int, stored: dict[int, int]) -> bool:
    """Whether every order stored up to `mark` is counted (each customer's count has
    reached what was stored for it by then) and settled by its payment."""
    with psycopg.connect(system.orders_db.conninfo()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM order_summaries WHERE seq <= %s AND payment_status = 'pending'",
            (mark,),
        ).fetchone()
        if row is None or row[0]:
            return False
    with psycopg.connect(system.customers_db.conninfo()) as conn:
        rows = conn.execute("SELECT customer_id, orders_count FROM orders_count").fetchall()
    counted = {int(c): int(n) for c, n in rows}
    return all(counted.get(customer, 0) >= n for customer, n in stored.items())


@dataclass
class Recovery:
    """How long after a fault the system has applied everything stored before it: the
    read model has counted it and every payment has settled (polled in the background,
    through the fault itself: a store that is away is simply not caught up yet)."""

    system: System
    faulted: float = 0.0
    recovered: float | None = None
    _watch: asyncio.Task[None] | None = None

    async def fault(self, step: Step) -> None:
        mark, stored = await asyncio.to_thread(_stored_by_customer, self.system, None)
        self.faulted = time.monotonic()
        self._watch = asyncio.create_task(self._until_caught_up(mark, stored))
        await perform(step)

    async def _until_caught_up(self, mark: int, stored: dict[int, int]) -> None:
        while True:
            with contextlib.suppress(psycopg.OperationalError):  # a store away: not yet
                if await asyncio.to_thread(_caught_up, self.system, mark, stored):
                    self.recovered = time.monotonic()
                    return
            await asyncio.sleep(0.2)  # a whole system catching up: there is no single signal

    async def seconds(self) -> float:
        """Once the system has settled, the watch has seen it catch up (bounded)."""
        assert self._watch is not None
        await asyncio.wait_for(self._watch, timeout=60)
        assert self.recovered is not None
        return self.recovered - self.faulted


def longest_outage(load: Load, since: float) -> float:
    """The longest spell from `since` to the load's end without a 201, while orders were
    being sent: the time a step held them back (a restart, say) is not the system's."""

    def sending(a: float, b: float) -> float:
        held = sum(max(0.0, min(b, end) - max(a, start)) for start, end in load.paused)
        return b - a - held

    times = [since, *sorted(t for t in load.created_at if t >= since), load.ended]
    return max((sending(a, b) for a, b in itertools.pairwise(times)), default=0.0)


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
    retry: bool = False,
) -> Figures:
    """Load, fault at a third, heal at two thirds, settle, check; the figures.

    `refusals` names the problems ("503 database_unavailable", say) the fault may cause;
    any other refusal fails the scenario, told apart by its problem code.

    With `commits_may_go_unheard` (the database or the API host itself goes away), an order
    may be stored whose client was answered 503 (or, through a proxy, 502 or 504): its
    COMMIT went through and the connection died before the answer came back, which no
    client of any database can tell from a failure. Such a client learns the outcome by
    retrying with the same Idempotency-Key. These orders must still be counted and settled
    exactly once, like every other stored one, and there are at most as many as such
    answers.

    With `retry`, each order is placed as a client across a proxy places it (`place`):
    asked again with its Idempotency-Key while its fate is open, and then every order it
    was told about is acknowledged, whether the first try's answer or a later one said so.

    The figures also say how long the fault cost: `outage`, the longest spell without a
    201 from the fault on, and `recovery`, from the fault until every order stored before
    it was counted and settled.
    """
    started = time.monotonic()
    before = await asyncio.to_thread(snapshot, system)
    recovery = Recovery(system)
    steps: dict[int, Step] = {max(1, orders // 3): lambda: recovery.fault(fault)}
    if heal is not None:
        steps[max(2, 2 * orders // 3)] = heal
    load = await drive(system, orders, steps, retry)
    after = await settle(system, before["stored"] + len(load.created))
    checked = await asyncio.to_thread(verify, system)
    acknowledged = await asyncio.to_thread(acknowledged_and_stored, system, load.created)
    recovered_in = await recovery.seconds()
    stored = after["stored"] - before["stored"]
    figures = Figures(
        scenario=name,
        orders=orders,
        created=len(load.created),
        refused=load.refused,
        refused_codes=load.refused_codes,
        unanswered=load.errors,
        retried=load.retried,
        slowest_refusal=load.slowest_refusal,
        stored=stored,
        stored_though_refused=stored - acknowledged,
        counted=after["counted"] - before["counted"],
        duplicates_absorbed=after["duplicates"] - before["duplicates"],
        settled=after["outcomes"] - before["outcomes"],
        payment_outcomes=after["payments"] - before["payments"],
        lost=len(load.created) - acknowledged,
        seconds=time.monotonic() - started,
        outage=longest_outage(load, recovery.faulted),
        recovery=recovered_in,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert figures.lost == 0, figures
    assert figures.unanswered == 0, (figures, load.error_kinds)  # none hung or dropped
    assert load.not_problems == 0, load  # every refusal says why, as problem details
    assert set(load.refused_codes) <= refusals, figures  # and for a reason the fault explains
    if heal is not None:
        assert load.created_after_steps > 0, figures  # orders flowed again once healed
    unheard = sum(load.refused.get(status, 0) for status in REFUSED_UNHEARD)
    unheard_limit = unheard if commits_may_go_unheard else 0
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
