"""The whole baseline as processes on free ports (benchmark fixture), for `make bench`.

Mirrors bench/stack.py's `Stack` and `start_stack`: `start_stack(prefix, whole=...)`
returns once every process is up; `stack.orders.url` is where the load goes, `stack.pids()`
names every process (with granian's workers) for CPU accounting from /proc, and
`stack.remove()` stops the processes and deletes the databases, exchanges and queues.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.baseline import topology
from bench.baseline.settings import Settings
from bench.procfs import peak_rss_mb, pids_named

ROOT = Path(__file__).resolve().parents[2]
PATH_WORKERS = ("orders-publisher", "orders-count")
WHOLE_WORKERS = (*PATH_WORKERS, "payments", "payments-publisher", "payment-results")
# For a harness that times each order with its own connection: which of these orders are
# counted (customers database), which have their payment outcome (orders database).
COUNTED_AMONG = (
    "SELECT event_id::text FROM processed_events"
    " WHERE consumer = 'orders-count' AND event_id = ANY(%s::uuid[])"
)
SETTLED_AMONG = (
    "SELECT id::text FROM orders WHERE payment_status <> 'pending' AND id = ANY(%s::uuid[])"
)
NAMES = {
    "orders-api": "orders API",
    "customers-api": "customers API",
    "orders-publisher": "orders outbox publisher",
    "orders-count": "orders-count consumer",
    "payments": "payments consumer",
    "payments-publisher": "payments outbox publisher",
    "payment-results": "payment-results consumer",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """One `python -m bench.baseline <role>` process."""

    role: str
    env: Mapping[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Process:
        argv = [sys.executable, "-m", "bench.baseline", self.role]
        self.process = subprocess.Popen(argv, env={**os.environ, **self.env}, cwd=ROOT)  # noqa: S603
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def pids(self) -> list[int]:
        """The process and its children (granian's worker)."""
        if self.process is None:
            return []
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return (
            [pid, *(int(c) for c in children.read_text().split())] if children.exists() else [pid]
        )


@dataclass
class BaselineStack:
    settings: Settings
    env: dict[str, str]
    orders: Process
    customers: Process
    workers: list[Process] = field(default_factory=list)

    @property
    def processes(self) -> list[Process]:
        return [self.customers, self.orders, *self.workers]

    def conninfo(self, service: str) -> str:
        """The database of `orders`, `customers` or `payments`, for a harness to read."""
        return self.settings.conninfo(service, "harness")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    async def delete_messaging(self) -> None:
        await topology.delete_all(self.settings)

    def remove(self) -> None:
        """Stop every process, then delete the databases, exchanges and queues."""
        self.stop()
        _run(self.env, "teardown")

    def pids(self) -> dict[str, list[int]]:
        """Every process of the stack with its workers, and the servers it uses."""
        found = {NAMES[p.role]: p.pids() for p in self.processes if p.process is not None}
        found["postgres (all backends)"] = pids_named("postgres")
        found["rabbitmq"] = pids_named("beam.smp")
        found["load generator"] = [os.getpid()]
        return found

    def peak_memory_mb(self) -> dict[str, float]:
        return {NAMES[p.role]: peak_rss_mb(p.pids()) for p in self.processes if p.alive()}

    def counted(self) -> int:
        """Orders counted in orders_count so far (a cheap probe for end-to-end timing)."""
        return self._scalar("customers", "SELECT coalesce(sum(orders_count), 0) FROM customers")

    def settled(self) -> int:
        """Orders whose payment outcome has been recorded so far."""
        query = "SELECT count(*) FROM orders WHERE payment_status <> 'pending'"
        return self._scalar("orders", query)

    def _scalar(self, service: str, query: str) -> int:
        with psycopg.connect(self.conninfo(service), autocommit=True) as conn:
            row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def stack_env(prefix: str, **overrides: str) -> dict[str, str]:
    """The environment of every process of a stack named `prefix`."""
    return {
        "BASELINE_PREFIX": prefix,
        "BASELINE_ORDERS_PORT": str(free_port()),
        "BASELINE_CUSTOMERS_PORT": str(free_port()),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


def start_stack(prefix: str, *, whole: bool = True, **overrides: str) -> BaselineStack:
    """The order path (customer and order APIs, orders publisher, orders-count consumer),
    or with `whole` also the payment flow; `overrides` are BASELINE_* settings."""
    env = stack_env(prefix, **overrides)
    settings = Settings.from_env(env)
    _run(env, "setup")
    stack = BaselineStack(
        settings,
        env,
        orders=Process("orders-api", env, settings.orders_port),
        customers=Process("customers-api", env, settings.customers_port),
    )
    try:
        stack.workers = [Process(r, env) for r in (WHOLE_WORKERS if whole else PATH_WORKERS)]
        for process in stack.processes:  # all at once: none needs another to start
            process.start()
        _wait_ready(stack.customers)
        _wait_ready(stack.orders)
        _wait_connected(stack)  # so every consumer's queue exists: nothing published is lost
    except BaseException:
        stack.remove()
        raise
    return stack


def _run(env: Mapping[str, str], role: str) -> None:
    argv = [sys.executable, "-m", "bench.baseline", role]
    subprocess.run(argv, env={**os.environ, **env}, cwd=ROOT, check=True, timeout=60)  # noqa: S603


def _wait_ready(api: Process, timeout: float = 30.0) -> None:
    """Poll the API's readiness (bounded); fail at once if its process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not api.alive():
            raise RuntimeError(f"baseline {api.role} exited")
        try:
            with urllib.request.urlopen(f"{api.url}/health/ready", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"baseline {api.role} not ready within {timeout}s")


def _wait_connected(stack: BaselineStack, timeout: float = 30.0) -> None:
    """A worker opens its database connection only once it consumes (or has its exchange),
    so its application_name in pg_stat_activity says it is up."""
    wanted = {stack.settings.application_name(w.role): w for w in stack.workers}
    deadline = time.monotonic() + timeout
    with psycopg.connect(stack.settings.conninfo("", dbname="postgres"), autocommit=True) as db:
        while time.monotonic() < deadline:
            for worker in wanted.values():
                if not worker.alive():
                    raise RuntimeError(f"baseline {worker.role} exited")
            rows = db.execute("SELECT application_name FROM pg_stat_activity").fetchall()
            if set(wanted) <= {name for (name,) in rows}:
                return
            time.sleep(0.05)
    raise TimeoutError(f"baseline workers not connected within {timeout}s")
