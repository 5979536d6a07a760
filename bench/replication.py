"""`make bench-replication`: what synchronous replication costs a commit, on hosts of its own.

A Postgres primary and its streaming standby, each on a host of its own (network
namespaces, tests.hosts; the pair of tests.pgpair, with fsync on as in production), and a
client host running pgbench. Two kinds of transaction:
- `insert`: one row, nothing else, so concurrent commits overlap;
- `append`: one row under the table's EXCLUSIVE lock, as the event store appends (the lock
  keeps the notification log in commit order, so appends take turns, each holding the lock
  until its commit returns),
with REPLICATION_CLIENTS concurrent clients (default 1,16), for REPLICATION_SECONDS each
(default 8), REPLICATION_ROUNDS times (default 3), the two modes interleaved:
- `synchronous_commit = on`: a commit returns once the standby has flushed it (what the
  bed and a failover that loses nothing need);
- `synchronous_commit = local`: once the primary alone has.

It prints commits per second and each transaction's latency (median and p99, from
pgbench's per-transaction log) for each mode, and the ratio of the two. Needs root.
"""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import explain
from tests.hosts import Network
from tests.pgpair import BIN, PostgresPair

MODES = ("local", "on")
SCRIPTS = {
    "insert": "INSERT INTO commits DEFAULT VALUES;\n",
    "append": "BEGIN;\nLOCK TABLE commits IN EXCLUSIVE MODE;\n"
    "INSERT INTO commits DEFAULT VALUES;\nCOMMIT;\n",
}


@dataclass
class Round:
    script: str
    mode: str
    clients: int
    commits_per_second: float
    median_ms: float
    p99_ms: float


def run_round(
    network: Network, pair: PostgresPair, kind: str, mode: str, clients: int, seconds: int
) -> Round:
    folder = Path(tempfile.mkdtemp(prefix="pgbench-"))
    script = folder / f"{kind}.sql"
    script.write_text(SCRIPTS[kind])
    connect = ["-h", pair.primary_address, "-U", "postgres"]
    workers = ["-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds)]
    logged: list[str | Path] = ["-f", script, "-l", "--log-prefix", folder / "tx"]
    network["client"].run(
        BIN / "pgbench",
        *["-n", *connect, *workers, *logged, "bench"],
        env={"PGOPTIONS": f"-c synchronous_commit={mode}"},
        timeout=seconds + 60,
    )
    latencies = []  # microseconds, the third field of each line of pgbench's log
    for log in folder.glob("tx*"):
        latencies += [int(line.split()[2]) for line in log.read_text().splitlines()]
    commits = len(latencies)
    cut = statistics.quantiles(latencies, n=100)
    shutil.rmtree(folder)
    return Round(
        kind, mode, clients, commits / seconds, statistics.median(latencies) / 1000, cut[98] / 1000
    )


def main() -> int:
    explain(__doc__, "make bench-replication")
    clients = [int(c) for c in os.environ.get("REPLICATION_CLIENTS", "1,16").split(",")]
    seconds = int(os.environ.get("REPLICATION_SECONDS", "8"))
    rounds = int(os.environ.get("REPLICATION_ROUNDS", "3"))
    network = Network(["db1", "db2", "client"])
    root = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    root.chmod(0o755)
    results: list[Round] = []
    pair: PostgresPair | None = None
    try:
        network.make()
        pair = PostgresPair(root=root / "postgres", on=(network["db1"], network["db2"]), fsync=True)
        pair.root.mkdir()
        pair.start()
        psql: list[str | Path] = [BIN / "psql", "-h", pair.primary_address, "-U", "postgres"]
        network["client"].run(*psql, "-c", "CREATE DATABASE bench")
        table = "CREATE TABLE commits (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"
        network["client"].run(*psql, "-d", "bench", "-c", table)
        for number in range(1, rounds + 1):
            for kind, count in itertools.product(SCRIPTS, clients):
                for mode in MODES if number % 2 else reversed(MODES):  # interleaved
                    done = run_round(network, pair, kind, mode, count, seconds)
                    results.append(done)
                    print(
                        f"round {number}, {kind}, {count} client(s), synchronous_commit={mode}:"
                        f" {done.commits_per_second:,.0f} commits/s, median"
                        f" {done.median_ms:.2f} ms, p99 {done.p99_ms:.2f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        if pair is not None:
            pair.stop()
        network.remove()
    print(summary(results, clients))
    return 0


def summary(results: list[Round], clients: list[int]) -> str:
    lines = [
        "| transaction | clients | synchronous_commit | commits/s (each round)"
        " | median latency (ms) | p99 latency (ms) |",
        "|" + " --- |" * 6,
    ]
    ratios = []
    for kind, count in itertools.product(SCRIPTS, clients):
        for mode in MODES:
            mine = [r for r in results if (r.script, r.clients, r.mode) == (kind, count, mode)]
            rates = "; ".join(f"{r.commits_per_second:,.0f}" for r in mine)
            medians = "; ".join(f"{r.median_ms:.2f}" for r in mine)
            p99s = "; ".join(f"{r.p99_ms:.2f}" for r in mine)
            lines.append(f"| {kind} | {count} | {mode} | {rates} | {medians} | {p99s} |")
        local, synced = (
            [r.commits_per_second for r in results if (r.script, r.clients, r.mode) == key]
            for key in ((kind, count, "local"), (kind, count, "on"))
        )
        each = ", ".join(f"{a / b:.2f}" for a, b in zip(local, synced, strict=True))
        ratios.append(f"- {kind}, {count} client(s): local / on, each round: {each}")
    return "\n".join(
        [*lines, "", "Commits per second, without the standby's wait over with it:", *ratios]
    )


if __name__ == "__main__":
    raise SystemExit(main())
