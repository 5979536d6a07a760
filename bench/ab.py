"""`make bench-ab BASE=<rev>`: this checkout against an earlier revision, side by side.

The machine is shared and its speed moves by tens of percent between runs, so a figure
from one run says little next to a figure from another. This alternates the two codes in
one run: a git worktree of BASE and this checkout each start the order path (customer and
order APIs, the order relay, the orders-count projector) and take 10 s of POST
/api/v1/orders at saturation, ROUNDS times each, interleaved. It prints each round and the
ratio of the medians.

It runs the scenario code of each revision (bench/scenarios.py there), so BASE must have
the same `start_stack` and load functions; any revision since this file was added has.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent

MEASURE = """
import asyncio, json
from bench import scenarios
from bench.load import closed_loop, open_loop
from tests.support import Databases

async def main():
    databases = Databases()
    stack = scenarios.start_stack(databases, scenarios.bench_prefix() + ".ab", whole=False)
    try:
        url = f"{stack.orders.url}/api/v1/orders"
        await open_loop(url, scenarios._order, rate=200, seconds=2)  # warm up
        families = stack.pids()
        api = families["orders API"]
        before = scenarios.cpu_seconds(api)
        result = await closed_loop(url, scenarios._order, workers=64, seconds=10)
        cpu = scenarios.cpu_seconds(api) - before
        orders = result.rate * result.seconds
        figures = {"per_s": result.rate, "api_ms_per_order": 1000 * cpu / orders}
        print("AB-FIGURES " + json.dumps(figures), flush=True)
    finally:
        stack.stop()
        await stack.delete_messaging()
        databases.drop_all()

asyncio.run(main())
"""


def measure(root: Path) -> dict[str, float]:
    """One saturation measurement of the code in `root` (its own packages, its own bench)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("AB-FIGURES "))
    figures: dict[str, float] = json.loads(line.removeprefix("AB-FIGURES "))
    return figures


def main(base: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        worktree = Path(scratch) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            rates: dict[str, list[float]] = {"base": [], "this": []}
            for number in range(1, rounds + 1):
                for name, root in (("base", worktree), ("this", ROOT)):
                    figures = measure(root)
                    rates[name].append(figures["per_s"])
                    print(
                        f"round {number}, {name}: {figures['per_s']:,.0f} orders/s,"
                        f" orders API {figures['api_ms_per_order']:.3f} ms CPU per order",
                        flush=True,
                    )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False
            )
    ratio = statistics.median(rates["this"]) / statistics.median(rates["base"])
    print(f"this checkout / {base}: {ratio:.2f} (medians of {rounds} rounds each)")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if args else 2)
    raise SystemExit(main(args[0], int(args[1]) if len(args) > 1 else 3))
