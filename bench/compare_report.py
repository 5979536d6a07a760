"""The comparison's figures as Markdown tables and as a plot, both systems side by side."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.compare import RATES

# (label, key in a load's figures, which load, lower is better)
FIGURES: list[tuple[str, str, str, bool]] = [
    *(
        (f"POST {which} at {rate}/s (ms)", f"post_{which}_ms", f"rate_{rate}", True)
        for rate in RATES
        for which in ("p50", "p99")
    ),
    *(
        (
            f"POST to orders_count visible, {which} at {rate}/s (ms)",
            f"counted_{which}_ms",
            f"rate_{rate}",
            True,
        )
        for rate in RATES
        for which in ("p50", "p99")
    ),
    *(
        (
            f"POST to payment settled, {which} at {rate}/s (ms)",
            f"settled_{which}_ms",
            f"rate_{rate}",
            True,
        )
        for rate in RATES
        for which in ("p50", "p99")
    ),
    *(
        (
            f"CPU per order, whole machine, at {rate}/s (ms)",
            "machine_cpu_ms_per_order",
            f"rate_{rate}",
            True,
        )
        for rate in RATES
    ),
    (
        "POST saturation, 64 clients, closed loop (orders/s)",
        "closed_loop_per_s",
        "saturation",
        False,
    ),
    (
        "saturation, sustained by the whole pipeline (orders/s)",
        "achieved_per_s",
        "saturation",
        False,
    ),
]


def spread(values: list[float]) -> str:
    return f"{min(values):,.1f}-{max(values):,.1f}"


def table(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "| figure | this project (median; range) | baseline (median; range)"
        " | ratio project / baseline | project ahead |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, key, which, lower_better in FIGURES:
        ours = [r[which][key] for r in runs["project"]]
        theirs = [r[which][key] for r in runs["baseline"]]
        a, b = statistics.median(ours), statistics.median(theirs)
        ratio = a / b if b else float("inf")
        ahead = a < b if lower_better else a > b
        lines.append(
            f"| {label} | {a:,.1f}; {spread(ours)} | {b:,.1f}; {spread(theirs)}"
            f" | {ratio:.2f} | {'yes' if ahead else '**no**'} |"
        )
    return lines


def cpu_table(runs: dict[str, list[dict[str, Any]]], rate: int) -> list[str]:
    lines = [f"CPU per order at {rate}/s, by process (ms, median of the rounds):", ""]
    for system, measured in runs.items():
        per_process: dict[str, list[float]] = {}
        for run in measured:
            for name, ms in run[f"rate_{rate}"]["cpu_ms_per_order"].items():
                per_process.setdefault(name, []).append(ms)
        shares = sorted(((statistics.median(v), n) for n, v in per_process.items()), reverse=True)
        lines.append(f"- {system}: " + ", ".join(f"{n} {ms:.2f}" for ms, n in shares if ms >= 0.05))
    return [*lines, ""]


def plot(runs: dict[str, list[dict[str, Any]]], target: Path) -> None:
    """CPU per order and POST p99 against the rate, both systems, as one PNG."""
    import matplotlib  # here: only make bench needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (cpu, p99) = pyplot.subplots(1, 2, figsize=(10, 4))
    for system, measured in runs.items():
        for axis, key in ((cpu, "machine_cpu_ms_per_order"), (p99, "post_p99_ms")):
            medians = [
                statistics.median(r[f"rate_{rate}"][key] for r in measured) for rate in RATES
            ]
            axis.plot(RATES, medians, marker="o", label=system)
    cpu.set(xlabel="orders/s (open loop)", ylabel="CPU ms per order, whole machine", xscale="log")
    p99.set(xlabel="orders/s (open loop)", ylabel="POST p99 (ms)", xscale="log")
    for axis in (cpu, p99):
        axis.minorticks_off()
        axis.set_xticks(RATES, [str(r) for r in RATES])
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=100)
