"""`make bench`: every figure of the performance issue, measured side by side in one run.

Starts what it measures on databases, exchanges and queues of its own, removes them after,
and writes docs/benchmarks.md. BENCH_REBUILD_EVENTS sets the size of the rebuild (default
1,000,000); BENCH_QUICK=1 shrinks every scenario for a smoke run; BENCH_ROUNDS sets the
rounds of the side-by-side comparison with the baseline (default 3); BENCH_ONLY=compare runs
only that comparison.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import compare, compare_report, explain, read_scenarios, scenarios, stack_scenarios
from bench.report import DOCS, PLOT, report
from bench.stack import start_stack
from tests.support import Databases

QUICK_PLOT = Path(tempfile.gettempdir()) / "benchmarks-load.png"  # a smoke run's, not kept


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


async def measure(quick: bool) -> dict[str, Any]:
    databases = Databases()
    prefix = scenarios.bench_prefix()
    results: dict[str, Any] = {}
    rounds = int(os.environ.get("BENCH_ROUNDS", "1" if quick else "3"))
    try:
        say(f"this project beside the conventional baseline, {rounds} rounds interleaved")
        results["compare"] = await compare.compare(
            databases, prefix, rounds=rounds, seconds=3 if quick else 10, say=say
        )
        if os.environ.get("BENCH_ONLY") == "compare":
            return results
        say("event store appends: single save vs group commit")
        results["appends"] = scenarios.appends(databases, orders=500 if quick else 4000)
        say("the library's per-event cost: its JSON transcoder beside a msgspec one")
        results["transcoding"] = scenarios.transcoding(events=2000 if quick else 20_000)
        for config, whole in (("path", False), ("whole", True)):
            label = "the whole system" if whole else "the order path"
            say(f"HTTP and end to end with {label}")
            stack = start_stack(databases, prefix, whole=whole)
            try:
                await stack.queues_declared()
                results[f"http_{config}"] = await stack_scenarios.http(stack)
                results[f"end_to_end_{config}"] = await stack_scenarios.end_to_end(
                    stack, seconds=3 if quick else 8
                )
                results[f"memory_{config}"] = stack.peak_memory_mb()
            finally:
                stack.stop()
                await stack.delete_messaging()
        say("relay beside a plain publish loop")
        results["relay"] = await scenarios.relay(
            databases, prefix, events=2000 if quick else 20_000
        )
        say("projection catch-up beside a plain consume loop")
        results["projection"] = await read_scenarios.projection(
            databases, prefix, backlog=5000 if quick else 100_000
        )
        events = int(os.environ.get("BENCH_REBUILD_EVENTS", 20_000 if quick else 1_000_000))
        say(f"rebuild of {events:,} events from the feed (filling the store first)")
        results["rebuild"] = await read_scenarios.rebuild_from_feed(databases, events=events)
    finally:
        databases.drop_all()
    return results


def main(argv: list[str] | None = None) -> int:
    explain(__doc__, "python -m bench", argv)
    logging.basicConfig(level=logging.WARNING)
    quick = os.environ.get("BENCH_QUICK") == "1"
    results = asyncio.run(measure(quick))
    text = report(results)
    if quick:
        compare_report.plot(results["compare"], QUICK_PLOT)
        print(text)
        say(f"quick run: docs/benchmarks.md left as it was (the plot is in {QUICK_PLOT})")
    else:
        compare_report.plot(results["compare"], PLOT)
        DOCS.write_text(text + NOTES_MARKER + _kept_notes())
        say(f"wrote {DOCS}")
    print(results, file=sys.stderr)
    return 0


NOTES_MARKER = "\n## Notes\n"


def _kept_notes() -> str:
    """The hand-written notes below the figures survive a re-run."""
    if DOCS.exists() and NOTES_MARKER in DOCS.read_text():
        return DOCS.read_text().split(NOTES_MARKER, 1)[1]
    return "\n(what bounds each figure, and what was changed because of it)\n"


if __name__ == "__main__":
    raise SystemExit(main())
