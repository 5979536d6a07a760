"""Load generation that measures latency honestly.

Open loop at a fixed rate: request i is due at start + i/rate, and its latency is measured
from that moment, not from when it was finally sent, so a stalled server cannot hide its
queueing delay (coordinated omission corrected). Closed loop with N workers for saturation.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

Body = Callable[[int], dict[str, Any]]


@dataclass
class Result:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    responses: list[Any] = field(default_factory=list)
    dues: list[float] = field(default_factory=list)  # when each successful request was due

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """Milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], due: float, result: Result
) -> None:
    result.sent += 1
    try:
        async with session.post(url, json=body) as response:
            payload = await response.json(content_type=None)
            if response.status in (200, 201):
                result.ok += 1
                result.latencies.append(time.monotonic() - due)
                result.responses.append(payload)
                result.dues.append(due)
            else:
                result.errors += 1
    except aiohttp.ClientError:
        result.errors += 1


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def open_loop(
    url: str, body: Body, *, rate: float, seconds: float, into: Result | None = None
) -> Result:
    """`rate` requests per second for `seconds`, each timed from when it was due; `into`
    is filled as answers arrive, for a watcher that follows the orders while they flow."""
    result = into if into is not None else Result()
    count = int(rate * seconds)
    async with _session(512) as session:
        start = time.monotonic()
        tasks = []
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself, not a wait for a condition
            tasks.append(asyncio.create_task(_post(session, url, body(i), due, result)))
        await asyncio.gather(*tasks)
        result.seconds = time.monotonic() - start
    return result


async def closed_loop(
    url: str, body: Body, *, workers: int, seconds: float, into: Result | None = None
) -> Result:
    """As fast as `workers` concurrent clients go, for `seconds`."""
    result = into if into is not None else Result()
    counter = iter(range(10**9))
    async with _session(workers) as session:
        start = time.monotonic()
        deadline = start + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                await _post(session, url, body(next(counter)), time.monotonic(), result)

        await asyncio.gather(*(worker() for _ in range(workers)))
        result.seconds = time.monotonic() - start
    return result


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


async def quiet(within: float = 60.0, below: float = 0.15) -> None:
    """Wait (bounded) until the machine is idle: a backlog or a previous load left running
    would otherwise be counted in the next figure."""
    deadline = time.monotonic() + within
    calm = 0
    while time.monotonic() < deadline and calm < 2:
        before, started = machine_busy_seconds(), time.monotonic()
        await asyncio.sleep(0.5)  # the length of one sample of the machine's load
        cores = os.cpu_count() or 1
        share = (machine_busy_seconds() - before) / (time.monotonic() - started) / cores
        calm = calm + 1 if share < below else 0
