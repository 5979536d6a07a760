"""`make bench-ab BASE=<rev>`: this checkout against an earlier revision, side by side.

The machine is shared and its speed moves by tens of percent between runs, so a figure
from one run says little next to a figure from another. This alternates the two codes in
one run: a git worktree of BASE and this checkout each start the whole system and take the
loads of `make bench`'s comparison (bench/compare.py there): open loop at each of AB_RATES
orders/s (default 100,200) and a closed loop of 64 clients, AB_SECONDS each (default 10),
waiting for the machine to go quiet before each. ROUNDS times each, interleaved. It prints
each round, then for every figure the medians of both and their ratio, and the CPU per order
of every process.

It runs the comparison code of each revision, so BASE must have bench/compare.py with
`project` and `load`; any revision since the comparison was added (6b6d2d1) has.

`python -m bench.ab --env NAME=V1,V2,... [ROUNDS]` (`make bench-env VAR=NAME VALUES=...`)
compares settings instead of revisions: this checkout, with the environment variable NAME
set to each value in turn, interleaved the same way; ratios are to the first value.
`--env A+B=A1+B1,A2+B2` varies several settings together (`VAR=A+B VALUES=A1+B1,A2+B2`).

`python -m bench.ab --tracing [ROUNDS]` (`make bench-tracing`) measures what tracing costs:
this checkout with tracing off (OTEL_EXPORTER_OTLP_ENDPOINT empty) and on, every process
exporting its spans over OTLP/HTTP to a sink on this machine that takes them and keeps
nothing (bench/otlp_sink.py, in this process: its CPU is in the machine's figure, and in
no process's), interleaved the same way; ratios are to tracing off.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.otlp_sink import otlp_sink

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent

MEASURE = """
import asyncio, json, os
from bench import compare, scenarios
from tests.support import Databases

async def main():
    databases = Databases()
    subject = await compare.project(databases, scenarios.bench_prefix() + ".ab")
    seconds = float(os.environ.get("AB_SECONDS", "10"))
    try:
        url = f"{subject.orders_url}/api/v1/orders"
        await compare.open_loop(url, compare.order, rate=100, seconds=2)  # warm up
        figures = {}
        for rate in (int(r) for r in os.environ.get("AB_RATES", "100,200").split(",")):
            figures[f"{rate}/s"] = await compare.load(subject, rate=rate, seconds=seconds)
        figures["64 clients"] = await compare.load(subject, rate=None, seconds=seconds)
        print("AB-FIGURES " + json.dumps(figures), flush=True)
    finally:
        await subject.close()
        databases.drop_all()

asyncio.run(main())
"""

# (label, key in a load's figures)
FIGURES = (
    ("POST/s achieved", "achieved_per_s"),
    ("POST p50 ms", "post_p50_ms"),
    ("POST p99 ms", "post_p99_ms"),
    ("counted p99 ms", "counted_p99_ms"),
    ("settled p99 ms", "settled_p99_ms"),
    ("settled after the load, s", "settled_after_s"),
    ("CPU ms per order, machine", "machine_cpu_ms_per_order"),
)


def measure(root: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Every load, once, on the code in `root` (its own packages, its own bench)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE],
        cwd=root,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(root), "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("AB-FIGURES "))
    figures: dict[str, Any] = json.loads(line.removeprefix("AB-FIGURES "))
    return figures


def median(runs: list[dict[str, Any]], load: str, key: str) -> float:
    return float(statistics.median(float(run[load][key]) for run in runs))


def report(runs: dict[str, list[dict[str, Any]]]) -> None:
    """Each figure's median for every variant, and its ratio to the first variant's."""
    names = list(runs)
    print(f"\nmedians of {len(runs[names[0]])} rounds each; ratios to {names[0]}")
    print(f"  {'':28} " + " ".join(f"{name[:12]:>12}" for name in names))
    for load in runs[names[0]][0]:
        print(f"\n{load}:")
        for label, key in FIGURES:
            values = [median(runs[name], load, key) for name in names]
            ratios = [f"{v / values[0]:.2f}" if values[0] else "-" for v in values[1:]]
            print(f"  {label:28} " + " ".join(f"{v:12.2f}" for v in values), " ", *ratios)
        processes = runs[names[-1]][0][load]["cpu_ms_per_order"].keys()
        for process in sorted(processes, key=lambda p: -median_cpu(runs[names[-1]], load, p)):
            values = [median_cpu(runs[name], load, process) for name in names]
            print(f"  CPU ms/order {process[:15]:15} " + " ".join(f"{v:12.2f}" for v in values))


def median_cpu(runs: list[dict[str, Any]], load: str, name: str) -> float:
    return float(
        statistics.median(float(run[load]["cpu_ms_per_order"].get(name, 0)) for run in runs)
    )


def interleaved(variants: dict[str, tuple[Path, dict[str, str]]], rounds: int) -> None:
    """Every variant once per round, the order reversed every other round; then the report."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for number in range(1, rounds + 1):
        order = list(variants) if number % 2 else list(reversed(variants))
        for name in order:
            root, env = variants[name]
            runs[name].append(measure(root, env))
            summary = ", ".join(
                f"{load} {f['machine_cpu_ms_per_order']:.1f} ms CPU/order"
                f" p99 {f['post_p99_ms']:.0f} ms"
                for load, f in runs[name][-1].items()
            )
            print(f"round {number}, {name}: {summary}", flush=True)
    report(runs)


def revisions(base: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        worktree = Path(scratch) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            interleaved({base: (worktree, {}), "this checkout": (ROOT, {})}, rounds)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False
            )
    return 0


TRACING_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


def tracing_variants(endpoint: str) -> dict[str, tuple[Path, dict[str, str]]]:
    """This checkout untraced, and traced to `endpoint`: the same code, one setting apart."""
    return {
        "tracing off": (ROOT, {TRACING_VARIABLE: ""}),
        "tracing on": (ROOT, {TRACING_VARIABLE: endpoint}),
    }


def tracing(rounds: int) -> int:
    """Tracing off against tracing on, exporting to a sink of the bench's own."""
    with otlp_sink() as sink:
        interleaved(tracing_variants(sink.endpoint), rounds)
        print(f"\nthe sink took {sink.exports:,} exports, {sink.received_bytes:,} bytes")
    return 0


def settings(assignment: str, rounds: int) -> int:
    """NAME=V1,V2,... or, to vary several settings together, A+B=A1+B1,A2+B2,..."""
    name, _, values = assignment.partition("=")
    names = name.split("+")
    variants = [value.split("+") for value in values.split(",")] if values else []
    if not name or not variants or any(len(v) != len(names) for v in variants):
        print("--env wants NAME=V1,V2,... or A+B=A1+B1,A2+B2,...", file=sys.stderr)
        return 2
    interleaved(
        {
            " ".join(f"{n}={v}" for n, v in zip(names, variant, strict=True)): (
                ROOT,
                dict(zip(names, variant, strict=True)),
            )
            for variant in variants
        },
        rounds,
    )
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if args else 2)
    if args[0] == "--tracing":
        raise SystemExit(tracing(int(args[1]) if len(args) > 1 else 3))
    if args[0] == "--env" and len(args) > 1:
        raise SystemExit(settings(args[1], int(args[2]) if len(args) > 2 else 3))
    raise SystemExit(revisions(args[0], int(args[1]) if len(args) > 1 else 3))
