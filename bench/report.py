"""What `make bench` writes to docs/benchmarks.md: one run's figures as tables and prose."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import compare, compare_report
from servicekit.postgres import PostgresSettings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
PLOT = DOCS.with_name("benchmarks-load.png")
COMMAND = "make bench"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    with psycopg.connect(PostgresSettings(dbname="postgres").conninfo()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    postgres = f"PostgreSQL {row[0] if row else '?'}"
    return (
        f"{os.cpu_count()} cores ({cpu}), {int(memory) / 1024 / 1024:.0f} GiB, "
        f"Python {platform.python_version()}, {postgres}; everything on this one machine"
    )


def _percentiles(figures: dict[str, Any]) -> str:
    return (
        f"p50 {figures['p50_ms']:.1f} ms, **p99 {figures['p99_ms']:.1f} ms** "
        f"({figures['achieved_per_s']:,.0f}/s achieved, {figures['errors']} errors)"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _http_rows(h: dict[str, Any], e: dict[str, Any], label: str) -> list[Row]:
    r500 = h["rate_500"]
    return [
        (
            f"POST /api/v1/orders at saturation (64 clients), {label}",
            f"**{h['saturation_per_s']:,.0f}/s** ({h['saturation_errors']} errors)",
            ">= 1,500/s",
            h["saturation_per_s"] >= 1500,
        ),
        (f"POST latency at 100/s, {label}", _percentiles(h["rate_100"]), "", True),
        (
            f"POST latency at 500/s, {label}",
            _percentiles(r500),
            "p99 <= 50 ms",
            r500["p99_ms"] <= 50,
        ),
        (f"POST latency at 1,000/s, {label}", _percentiles(h["rate_1000"]), "", True),
        (
            f"end to end, POST to orders_count visible, 200/s, {label}",
            f"{_percentiles(e)}; {e['visible']} of {e['orders']} orders seen",
            "p99 <= 150 ms",
            e["p99_ms"] <= 150,
        ),
    ]


Row = tuple[str, str, str, bool]


def _transcoding_row(t: dict[str, Any] | None) -> Row:
    what = "the library's mapper per event, stored and loaded: its JSON transcoder vs msgspec"
    if t is None:
        return (what, "not measured in this run", "", True)
    same = "the same bytes" if t["same_bytes"] else "**different bytes**"
    return (
        what,
        f"{t['json_us']:.1f} vs {t['msgspec_us']:.1f} µs = **{t['ratio']:.2f}x** ({same})",
        "",
        True,
    )


def _cpu_table(h: dict[str, Any], label: str) -> list[str]:
    wall = h["wall_seconds"]
    shares = sorted(h["cpu_seconds"].items(), key=lambda item: -item[1])
    busy = sum(seconds for _, seconds in shares)
    return [
        f"CPU during the 10 s at saturation, {label} ({busy / wall:.2f} of the 2 cores busy;"
        f" {h['saturation_per_s']:,.0f} orders/s):",
        "",
        *(
            f"- {name}: {seconds / wall:.2f} cores ({1000 * seconds / max(1, h['saturation_per_s'] * wall):.2f} ms per order)"  # noqa: E501
            for name, seconds in shares
            if seconds / wall >= 0.01
        ),
        "",
    ]


def comparison(runs: dict[str, list[dict[str, Any]]], plot: str) -> list[str]:
    rounds = len(runs["project"])
    return [
        "## This project beside the conventional design",
        "",
        "The baseline (`bench/baseline/`, a benchmark fixture) is CRUD plus a transactional",
        "outbox in the same libraries: the order row and its outbox row in one transaction, a",
        "SKIP LOCKED publisher with batched confirms, consumers that dedup by event id in a",
        "`processed_events` table, the same payment flow. Both run every process of the whole",
        f"system; each measured alone, the other stopped, {rounds} rounds interleaved. Latencies",
        "are timed from when each request was due; *visible* and *settled* from then until",
        "the order is counted in orders_count and until its payment outcome is recorded.",
        "CPU per order is the whole machine's busy time (load generator included) over the",
        "load and until everything settled, divided by the orders. Saturation is the highest",
        "POST rate after which everything is counted and settled within"
        f" {compare.SETTLE_WITHIN:.0f} s.",
        "",
        *compare_report.table(runs),
        "",
        f"![CPU per order and POST p99 against the rate]({plot})",
        "",
        *compare_report.cpu_table(runs, 100),
        *compare_report.cpu_table(runs, 200),
    ]


def report(results: dict[str, Any]) -> str:
    header = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{COMMAND}` on {machine()}.",
        "Every figure comes from one run; compare within the run (the machine is shared and",
        "noisy). The load generator runs on the same two cores.",
        "",
    ]
    lines = [*header, *comparison(results["compare"], PLOT.name)]
    if "appends" in results:
        lines += ["## Each part of this project", "", *parts(results)]
    return "\n".join(lines)


def parts(results: dict[str, Any]) -> list[str]:
    a, r, p, b = results["appends"], results["relay"], results["projection"], results["rebuild"]
    m = {**results["memory_path"], **results["memory_whole"]}
    peak = max([*m.values(), b["orders_api_peak_mb"]])
    rows: list[Row] = [
        (
            "event store appends, group commit vs single save (64 threads)",
            f"{a['group_per_s']:,.0f} vs {a['single_per_s']:,.0f} orders/s = "
            f"**{a['ratio']:.1f}x** (mean batch {a['mean_batch']:.1f})",
            ">= 10x",
            a["ratio"] >= 10,
        ),
        _transcoding_row(results.get("transcoding")),
        *_http_rows(results["http_path"], results["end_to_end_path"], "order path"),
        *_http_rows(results["http_whole"], results["end_to_end_whole"], "whole system"),
        (
            "relay vs plain publish-with-confirms loop",
            f"{r['relay_per_s']:,.0f} vs {r['plain_per_s']:,.0f} msg/s = **{r['ratio']:.0%}**",
            ">= 90%",
            r["ratio"] >= 0.9,
        ),
        (
            f"projection catch-up on a backlog of {p['backlog']:,}, vs plain consume",
            f"{p['projector_per_s']:,.0f}/s vs {p['plain_per_s']:,.0f}/s = **{p['ratio']:.0%}**",
            ">= 90%",
            p["ratio"] >= 0.9,
        ),
        (
            f"rebuild of {b['events']:,} events from the feed",
            f"**{b['seconds']:.1f} s** ({b['per_s']:,.0f} events/s; "
            f"filling the store took {b['fill_seconds']:.0f} s)",
            "<= 15 s for 1,000,000",
            b["seconds"] <= 15 * b["events"] / 1_000_000,
        ),
        ("peak resident memory, largest process", f"**{peak:.0f} MB**", "<= 200 MB", peak <= 200),
    ]
    return [
        "Latencies are open loop at a fixed rate, timed from when each request was due",
        "(coordinated omission corrected). Two configurations: the *order path* runs what",
        "creating and counting an order needs (customer and order APIs, the order relay,",
        "the orders-count projector); the *whole system* adds the payment API, its",
        "processor and relay, the payment-results consumer and the second read model (the",
        "projector keeps both, as `ordersystem run` starts it), so every order also drives",
        "a payment.",
        "",
        "| what | measured | goal | |",
        "| --- | --- | --- | --- |",
        *(
            f"| {what} | {figure} | {goal} | {verdict(ok) if goal else ''} |"
            for what, figure, goal, ok in rows
        ),
        "",
        *_cpu_table(results["http_path"], "order path"),
        *_cpu_table(results["http_whole"], "whole system"),
        "Peak resident memory per process (VmHWM, a process and its server workers):",
        "",
        *(f"- {name}: {mb:.0f} MB" for name, mb in sorted(m.items())),
        f"- orders API serving the rebuild's feed: {b['orders_api_peak_mb']:.0f} MB",
        "",
    ]
