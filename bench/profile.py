"""`make profile`: where each process of the whole system spends its CPU at a fixed rate.

Starts the whole system on databases, exchanges and queues of its own (as `make bench`
does), drives open-loop POSTs at PROFILE_RATE orders/s (default 100) for PROFILE_SECONDS
(default 20), and samples every Python process with py-spy meanwhile. Only samples of a
thread holding the GIL count (`--gil`): a thread waiting on a socket, a lock or the
database has let it go, so a process's samples say where its Python time went.
Each process's collapsed stacks go to PROFILE_DIR (default /tmp/ordersystem-profile), for
a flame graph tool or for grep; the report prints, per process, its CPU per order and the
functions holding most of its samples, by their own time and with what they call.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from itertools import zip_longest
from pathlib import Path

from bench import explain, scenarios, stack_scenarios
from bench.load import open_loop
from bench.procfs import cpu_seconds
from bench.stack import start_stack
from tests.support import Databases

PY_SPY = Path(sys.executable).with_name("py-spy")
SAMPLES_PER_S = 200
TOP = 12
PACKAGES: tuple[str, ...] = ("contracts", "order_service", "customer_service")
PACKAGES += ("payment_service", "projections", "servicekit")


def say(text: str) -> None:
    print(f"[profile {time.strftime('%H:%M:%S')}] {text}", flush=True)


def record(name: str, pid: int, seconds: float, into: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling one process (and its server workers) for `seconds`, into a file."""
    out = into / f"{name.replace(' ', '_')}.txt"
    argv = [
        str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--rate", str(SAMPLES_PER_S), "--format", "raw", "--subprocesses", "--gil", "--nonblocking",
        "--output", str(out),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def summary(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples in all; per function, samples on top of the stack (its own time), and per
    function of this project, samples anywhere in the stack (with what it calls)."""
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")[1:]  # the first is the process or the thread
        if not frames:
            continue
        total += int(count)
        own[short(frames[-1])] += int(count)
        for frame in {short(f) for f in frames if is_ours(f)}:
            ours[frame] += int(count)
    return total, own, ours


def short(frame: str) -> str:
    """`function (path/module.py:line)` as `function module.py`."""
    function, _, place = frame.partition(" (")
    return f"{function} {Path(place.split(':')[0]).name}" if place else function


def is_ours(frame: str) -> bool:
    """py-spy names a frame's file from its package down: `servicekit/relay.py:12`."""
    return frame.partition(" (")[2].split("/")[0] in PACKAGES


def main() -> int:
    explain(__doc__, "python -m bench.profile")
    rate = int(os.environ.get("PROFILE_RATE", "100"))
    seconds = float(os.environ.get("PROFILE_SECONDS", "20"))
    into = Path(os.environ.get("PROFILE_DIR", Path(tempfile.gettempdir()) / "ordersystem-profile"))
    into.mkdir(parents=True, exist_ok=True)
    if not PY_SPY.exists():
        print("py-spy is missing: run `make install` (it is in the dev lock)", file=sys.stderr)
        return 2
    asyncio.run(profile(rate, seconds, into))
    return 0


async def profile(rate: int, seconds: float, into: Path) -> None:
    databases = Databases()
    stack = start_stack(databases, scenarios.bench_prefix(), whole=True)
    try:
        await stack.queues_declared()
        url = f"{stack.orders.url}/api/v1/orders"
        say("warming up")
        await open_loop(url, stack_scenarios.order_body, rate=rate, seconds=3)
        families = {
            name: pids
            for name, pids in stack.pids().items()
            if name not in {"postgres (all backends)", "rabbitmq", "load generator"}
        }
        before = {name: cpu_seconds(pids) for name, pids in stack.pids().items()}
        say(f"{rate} orders/s for {seconds:.0f} s, sampling {len(families)} processes")
        samplers = {name: record(name, pids[0], seconds, into) for name, pids in families.items()}
        result = await open_loop(url, stack_scenarios.order_body, rate=rate, seconds=seconds)
        for sampler in samplers.values():
            sampler.wait(timeout=60)
        spent = {name: cpu_seconds(pids) - before[name] for name, pids in stack.pids().items()}
    finally:
        stack.stop()
        await stack.delete_messaging()
        databases.drop_all()
    orders = max(1, result.sent)
    say(f"{orders} orders sent, {result.errors} errors; stacks in {into}")
    for name, cpu in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"\n== {name}: {cpu:.2f} s CPU, {1000 * cpu / orders:.2f} ms per order")
        path = into / f"{name.replace(' ', '_')}.txt"
        if name not in families or not path.exists():
            continue
        total, own, anywhere = summary(path)
        if not total:
            continue
        print(f"   {total} samples holding the GIL; by own time | this project's, with callees:")
        tops = own.most_common(TOP)
        callers = anywhere.most_common(TOP)
        for (f1, n1), (f2, n2) in zip_longest(tops, callers, fillvalue=("", 0)):
            print(f"   {100 * n1 / total:5.1f}% {f1[:60]:60} | {100 * n2 / total:5.1f}% {f2[:60]}")


if __name__ == "__main__":
    raise SystemExit(main())
