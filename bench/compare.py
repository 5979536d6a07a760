"""This project beside the conventional design (bench/baseline), at every load, in one run.

Each round measures both systems in turn (the order alternates between rounds), one at a
time with the other stopped, and waits for the machine to go quiet before every load. For
each system and each open-loop rate it records the POST latency (timed from when each
request was due), the time from that moment until the order is counted in orders_count
and until its payment outcome is recorded, and the CPU used per order by every process
and by the whole machine (from /proc), over the load and until everything was settled.
Saturation is the highest POST rate the whole pipeline sustains: every order counted and
settled within SETTLE_WITHIN seconds of the load stopping.

The two systems are in bench/subjects.py, the tables and the plot in bench/compare_report.py.
bench/ab.py's measuring script, run on every revision it compares, calls `project`, `order`,
`open_loop` and `load` from this module, so they are all to be found here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.load import Result, closed_loop, machine_busy_seconds, open_loop, quiet
from bench.procfs import cpu_seconds
from bench.subjects import Subject, conventional, order, project
from tests.support import Databases

RATES = (50, 100, 200, 400)
SETTLE_WITHIN = 5.0  # seconds after the load stops: past it, a rate is not sustained
SAMPLE = 0.005  # seconds between two looks at what is counted and settled


@dataclass
class Watch:
    """Follows every answered order until it is counted and settled; when each was."""

    result: Result
    counted_at: dict[str, float] = field(default_factory=dict)
    settled_at: dict[str, float] = field(default_factory=dict)

    async def follow(self, subject: Subject, load_done: asyncio.Event, within: float) -> None:
        waiting_count: list[str] = []
        waiting_settle: list[str] = []
        learned = 0
        deadline: float | None = None
        while True:
            answered = self.result.responses
            for response in answered[learned:]:
                waiting_count.append(response["id"])
                waiting_settle.append(response["id"])
            learned = len(answered)
            now = time.monotonic()
            for ids, seen, among in (
                (waiting_count, self.counted_at, subject.counted),
                (waiting_settle, self.settled_at, subject.settled),
            ):
                if ids:
                    found = await among(ids)
                    seen.update(dict.fromkeys(found, now))
                    ids[:] = [i for i in ids if i not in found]
            if load_done.is_set():
                deadline = deadline or time.monotonic() + within
                if (not waiting_count and not waiting_settle) or time.monotonic() > deadline:
                    return
            await asyncio.sleep(SAMPLE)

    def latencies(self, seen: dict[str, float]) -> Result:
        """Each seen order's time from when its POST was due, as a Result to read."""
        dues = dict(zip((r["id"] for r in self.result.responses), self.result.dues, strict=True))
        return Result(latencies=[when - dues[order_id] for order_id, when in seen.items()])


async def load(subject: Subject, *, rate: float | None, seconds: float) -> dict[str, Any]:
    """One load (open loop at `rate`, or closed loop with 64 clients when None), followed
    until settled; its figures."""
    await quiet()
    url = f"{subject.orders_url}/api/v1/orders"
    families = subject.pids()
    cpu_before = {name: cpu_seconds(pids) for name, pids in families.items()}
    machine_before, started = machine_busy_seconds(), time.monotonic()
    result, done = Result(), asyncio.Event()
    watch = Watch(result)
    follower = asyncio.create_task(watch.follow(subject, done, within=30))
    if rate is None:
        await closed_loop(url, order, workers=64, seconds=seconds, into=result)
    else:
        await open_loop(url, order, rate=rate, seconds=seconds, into=result)
    ended = time.monotonic()
    done.set()
    await follower
    settled_after = max([*watch.counted_at.values(), *watch.settled_at.values(), ended]) - ended
    orders = max(1, result.ok)
    counted, settled = watch.latencies(watch.counted_at), watch.latencies(watch.settled_at)
    cpu = {
        name: (cpu_seconds(pids) - cpu_before[name]) * 1000 / orders
        for name, pids in families.items()
    }
    return {
        "rate": rate,
        "achieved_per_s": result.ok / (ended - started),
        "orders": result.ok,
        "errors": result.errors,
        "post_p50_ms": result.percentile(0.50),
        "post_p99_ms": result.percentile(0.99),
        "counted_p50_ms": counted.percentile(0.50),
        "counted_p99_ms": counted.percentile(0.99),
        "settled_p50_ms": settled.percentile(0.50),
        "settled_p99_ms": settled.percentile(0.99),
        "unsettled": result.ok - min(len(watch.counted_at), len(watch.settled_at)),
        "settled_after_s": settled_after,
        "cpu_ms_per_order": cpu,
        "machine_cpu_ms_per_order": (machine_busy_seconds() - machine_before) * 1000 / orders,
    }


def sustained(figures: dict[str, Any]) -> bool:
    return bool(
        figures["unsettled"] == 0
        and figures["errors"] == 0
        and figures["settled_after_s"] <= SETTLE_WITHIN
    )


async def saturation(subject: Subject, seconds: float) -> dict[str, Any]:
    """The highest POST rate whose orders are all counted and settled within SETTLE_WITHIN
    of the load stopping: the closed loop's rate if the pipeline keeps up with it, else the
    highest open-loop rate below it that it does keep up with."""
    tried = [await load(subject, rate=None, seconds=seconds)]
    rate = tried[-1]["achieved_per_s"]
    while not sustained(tried[-1]) and rate > RATES[0] and len(tried) < 6:
        rate *= 0.8
        tried.append(await load(subject, rate=rate, seconds=seconds))
    best = tried[-1] if sustained(tried[-1]) else {**tried[-1], "achieved_per_s": 0.0}
    return {
        **best,
        "closed_loop_per_s": tried[0]["achieved_per_s"],  # POST alone, 64 clients
        "tried": [(t["rate"], t["achieved_per_s"], sustained(t)) for t in tried],
    }


async def measure_one(subject: Subject, seconds: float) -> dict[str, Any]:
    await open_loop(f"{subject.orders_url}/api/v1/orders", order, rate=100, seconds=2)  # warm
    figures = {f"rate_{rate}": await load(subject, rate=rate, seconds=seconds) for rate in RATES}
    figures["saturation"] = await saturation(subject, seconds)
    return figures


Starter = Callable[[], Awaitable[Subject]]


async def compare(
    databases: Databases, prefix: str, *, rounds: int, seconds: float, say: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """Every figure for both systems, `rounds` times, interleaved; one list per system."""
    starters: dict[str, Starter] = {
        "project": lambda: project(databases, f"{prefix}.r{len(runs['project'])}"),
        "baseline": lambda: conventional(f"{prefix}.r{len(runs['baseline'])}"),
    }
    runs: dict[str, list[dict[str, Any]]] = {"project": [], "baseline": []}
    for number in range(rounds):
        order_of_systems = list(starters) if number % 2 == 0 else list(reversed(starters))
        for name in order_of_systems:
            say(f"round {number + 1} of {rounds}: {name}")
            subject = await starters[name]()
            try:
                runs[name].append(await measure_one(subject, seconds))
            finally:
                await subject.close()
    return runs
