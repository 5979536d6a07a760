"""Test support: real servers or a loud failure in CI, fresh databases, real service processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from order_service.application import Orders
from order_service.domain import Order
from ordersystem.commands import READ_MODELS
from ordersystem.preflight import Finding
from servicekit.postgres import PostgresSettings, drop_database, ensure_database
from servicekit.schema import Step, migrate

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]


def require(finding: Finding) -> None:
    """Skip when a server is missing on a developer's machine; in CI (CI=true) fail instead."""
    if finding.ok:
        return
    message = f"{finding.server} is not reachable ({finding.detail}); {finding.remedy}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class Databases:
    """Databases made for this test run, all dropped at its end."""

    made: list[PostgresSettings] = field(default_factory=list)

    def fresh(self, purpose: str, migrations: Sequence[Step] = ()) -> PostgresSettings:
        """A new database, with the schema step run when `migrations` are given."""
        settings = PostgresSettings(dbname=f"t{RUN_ID}_{purpose}_{len(self.made)}")
        ensure_database(settings)
        self.made.append(settings)
        if migrations:
            migrate(settings, migrations)
        return settings

    def drop_all(self) -> None:
        for settings in self.made:
            drop_database(settings)


def tables(settings: PostgresSettings) -> set[str]:
    """The tables of a database's public schema."""
    with psycopg.connect(settings.conninfo()) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return {row[0] for row in rows}


def ordersystem(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`ordersystem ARGS` as an operator runs it, on this checkout: the test's environment
    plus `env`, output captured, the exit code left to the caller."""
    return subprocess.run(
        [sys.executable, "-m", "ordersystem", *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll a readiness endpoint (bounded) until it answers 200; fail if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} was not ready within {timeout}s")


@dataclass
class ServiceProcess:
    """One of our services, started as a real process on a free port."""

    service: str
    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workers: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        argv = [
            sys.executable,
            "-m",
            "ordersystem",
            "serve",
            self.service,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        # A session of its own: granian's workers are its children, and a stop that has to
        # kill must take them too, not leave one running on its own.
        self.process = subprocess.Popen(
            argv, env={**os.environ, **self.env}, cwd=ROOT, start_new_session=True
        )
        wait_until_ready(f"{self.url}/health/ready", self.process)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # none left: the usual case
            os.killpg(self.process.pid, signal.SIGKILL)  # a worker that outlived the server


# Each worker role's metrics port (the services' settings).
METRICS_PORT_VARIABLES = (
    "ORDERS_RELAY_METRICS_PORT",
    "PAYMENTS_RELAY_METRICS_PORT",
    "PAYMENT_PROCESSOR_METRICS_PORT",
    "PAYMENT_RESULTS_METRICS_PORT",
    "PROJECTOR_METRICS_PORT",
)


@dataclass
class Worker:
    """A worker process of ours (`ordersystem relay`, `ordersystem project ...`).

    Real processes, so a test can kill -9 them.
    """

    command: tuple[str, ...]
    env: Mapping[str, str]
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> Worker:
        """Start the process, unless it is running already. It serves its metrics on a free
        port of its own: every worker's port variable names it, and its role reads one."""
        if self.process is not None and self.process.poll() is None:
            return self
        argv = [sys.executable, "-m", "ordersystem", *self.command]
        ports = dict.fromkeys(METRICS_PORT_VARIABLES, str(self.metrics_port))
        env = {**os.environ, "METRICS_HOST": "127.0.0.1", **ports, **self.env}
        self.process = subprocess.Popen(argv, env=env, cwd=ROOT)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no goodbye, no cleanup
        self.process.wait()

    def stop(self) -> None:
        terminate(self.process)


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM a process of the test's own and wait for it; SIGKILL after `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def relay_process(env: Mapping[str, str]) -> Worker:
    return Worker(("relay",), env)


def projector_process(env: Mapping[str, str]) -> Worker:
    """A projector keeping every read model, as `ordersystem run` starts it."""
    return Worker(("project", *READ_MODELS), env)


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], within: float = 10.0, what: str = ""
) -> None:
    """Wait (bounded) for a condition that has no signal of its own to await."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if result if isinstance(result, bool) else await result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within}s: {what or condition}")
        await asyncio.sleep(0.01)


def fill_orders(orders: Orders, count: int) -> list[int]:
    """Store `count` orders quickly (200 per transaction, customers 1..5); every position."""
    for start in range(0, count, 200):
        batch = [
            Order.place(
                order_id=uuid.uuid4(),
                customer_id=1 + n % 5,
                product_name="load",
                quantity=1,
                price=Decimal("1.00"),
            )
            for n in range(start, min(start + 200, count))
        ]
        orders.save_orders(*batch)
    return [n.id for n in orders.recorder.select_notifications(start=1, limit=10**7)]


async def pg_ctlcluster(action: str) -> None:
    """Stop or start the local Postgres cluster; "start" when it runs already does nothing
    (a fault test that stops it always starts it again, whatever happened)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    if action == "start":
        status = await asyncio.create_subprocess_exec(
            *command, "status", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if await status.wait() == 0:
            return
    process = await asyncio.create_subprocess_exec(
        *command, action, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster {action}: {errors.decode()}")
