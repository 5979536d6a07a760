"""What each `ordersystem` command does (ordersystem.cli parses the arguments).

Each command imports the service it runs when it runs, so that `--help` imports none.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from ordersystem.preflight import preflight, report


@dataclass(frozen=True)
class Service:
    """An HTTP API: its package, the module whose `app_from_env` builds its app, and the
    module that lists its database's MIGRATIONS."""

    package: str
    app_module: str = "api"
    schema_module: str = "application"

    @property
    def factory(self) -> str:
        return f"{self.package}.{self.app_module}:app_from_env"

    def settings(self, env: Mapping[str, str]) -> Any:
        """The service's own settings (its host and port among them), from `env`."""
        return importlib.import_module(f"{self.package}.settings").Settings.from_env(env)

    def migrations(self) -> Any:
        """The steps of its database's schema (servicekit.schema)."""
        return importlib.import_module(f"{self.package}.{self.schema_module}").MIGRATIONS


SERVICES = {
    "orders": Service("order_service", "app"),
    "customers": Service("customer_service", schema_module="store"),
    "payments": Service("payment_service"),
}
# The customer service's read models (customer_service.projector.PROJECTIONS, which a test
# holds to this list; named here so that parsing arguments imports no service).
READ_MODELS = ("orders-count", "orders-by-status")


def cmd_preflight(_: argparse.Namespace) -> int:
    findings = preflight()
    print(report(findings))
    return 0 if all(f.ok for f in findings) else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from servicekit.serve import serve

    service = SERVICES[args.service]
    settings = service.settings(os.environ)  # the app, in the server's worker, reads its own
    host, port = args.host or settings.host, args.port or settings.port
    serve(service.factory, host=host, port=port, workers=args.workers)
    return 0


def run_worker(name: str, main: Coroutine[Any, Any, None]) -> int:
    """A worker's main on uvloop, traced as `name` when a collector is named
    (servicekit.tracing)."""
    from servicekit import tracing

    with tracing.process(name):
        uvloop.run(main)
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    if args.service == "payments":
        from payment_service.relay import run_relay as run_payment_relay
        from payment_service.settings import Settings as PaymentSettings

        return run_worker("payments-relay", run_payment_relay(PaymentSettings.from_env(os.environ)))
    from order_service.relay import run_relay
    from order_service.settings import Settings

    return run_worker("orders-relay", run_relay(Settings.from_env(os.environ)))


def cmd_consume(args: argparse.Namespace) -> int:
    if args.stream == "order-created":
        from payment_service.processor import run_processor
        from payment_service.settings import Settings as PaymentSettings

        return run_worker("payment-processor", run_processor(PaymentSettings.from_env(os.environ)))
    from order_service.payment_results import run_payment_results
    from order_service.settings import Settings

    return run_worker("payment-results", run_payment_results(Settings.from_env(os.environ)))


def cmd_catalogue(args: argparse.Namespace) -> int:
    from contracts.catalogue import render

    target = Path(args.output)
    text = render()
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is out of date: run `ordersystem catalogue`", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from customer_service.projector import run_projector
    from customer_service.settings import Settings

    return run_worker("projector", run_projector(Settings.from_env(os.environ), args.projection))


def cmd_rebuild(args: argparse.Namespace) -> int:
    from customer_service.projector import rebuild_command
    from customer_service.settings import Settings

    return uvloop.run(rebuild_command(Settings.from_env(os.environ), args.projection))


def cmd_repartition(args: argparse.Namespace) -> int:
    from customer_service.projector import repartition_command
    from customer_service.settings import Settings

    return uvloop.run(repartition_command(Settings.from_env(os.environ), args.partitions))


def cmd_verify(args: argparse.Namespace) -> int:
    from customer_service.projector import verify_command
    from customer_service.settings import Settings

    return uvloop.run(verify_command(Settings.from_env(os.environ), args.projection))


def cmd_audit(args: argparse.Namespace) -> int:
    from order_service.application import Orders
    from order_service.audit import history_table, state_block
    from order_service.settings import Settings
    from order_service.usecases import OrderNotFoundError

    orders = Orders(env=Settings.from_env(os.environ).eventsourcing_env())
    try:
        if args.at is None:
            print(history_table(orders.history(args.order_id)))
        else:
            view = orders.order_at(args.order_id, args.at)
            print(f"order {args.order_id} at {args.at.isoformat()} (version {view.version}):")
            print(state_block(view))
    except OrderNotFoundError:
        when = f" at {args.at.isoformat()}" if args.at else ""
        print(f"no order {args.order_id}{when}", file=sys.stderr)
        return 1
    finally:
        orders.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from order_service.replay import replay
    from order_service.settings import Settings
    from servicekit.progress import Progress

    if args.to < args.start:
        print("--to must not be before --from", file=sys.stderr)
        return 2
    progress = Progress("replay")
    settings = Settings.from_env(os.environ)
    sent = uvloop.run(replay(settings, args.start, args.to, args.queue, progress))
    target = f"queue {args.queue}" if args.queue else f"exchange {settings.exchange}"
    print(progress.summary(f"replayed positions {args.start}..{args.to} to {target}"))
    return 0 if sent else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    """The one schema step (servicekit.schema), for one service's database or all three."""
    from servicekit.schema import migrate

    for name in SERVICES if args.service == "all" else (args.service,):
        service = SERVICES[name]
        settings = service.settings(os.environ)
        applied = migrate(settings.postgres, service.migrations())
        print(f"{name}: {applied} migration(s) applied to database {settings.postgres.dbname}")
    return 0


def cmd_seed(_: argparse.Namespace) -> int:
    from customer_service.settings import Settings
    from customer_service.store import migrate, seed

    settings = Settings.from_env(os.environ)
    migrate(settings.postgres)
    inserted = seed(settings.postgres)
    print(f"customers: {inserted} predefined customer(s) inserted")
    return 0


def cmd_run(_: argparse.Namespace) -> int:
    from ordersystem.supervisor import Process, command, supervise

    findings = preflight()
    if not all(f.ok for f in findings):
        print(report(findings), file=sys.stderr)
        return 1
    cmd_migrate(argparse.Namespace(service="all"))  # once, before any process starts
    processes = []
    for name in ("customers", "orders", "payments"):
        settings = SERVICES[name].settings(os.environ)
        url = f"http://{_local(settings.host)}:{settings.port}/health/ready"
        processes.append(Process(name, command("serve", name), url))
    processes.append(Process("relay", command("relay", "orders")))
    processes.append(Process("payment-relay", command("relay", "payments")))
    processes.append(Process("payments", command("consume", "order-created")))
    processes.append(Process("payment-results", command("consume", "payment-results")))
    processes.append(Process("projector", command("project", *READ_MODELS)))  # both, together
    print(metrics_endpoints(os.environ))
    asyncio.run(supervise(processes))
    return 0


def process_endpoints(env: Mapping[str, str]) -> dict[str, tuple[str, str | None, str | None]]:
    """Each process `ordersystem run` starts: its kind, where it serves its metrics (None:
    nowhere) and, for an API, its readiness endpoint."""
    apis = {name: SERVICES[name].settings(env) for name in ("customers", "orders", "payments")}
    customers, orders, payments = apis.values()
    found: dict[str, tuple[str, str | None, str | None]] = {}
    for name, settings in apis.items():
        base = f"http://{_local(settings.host)}:{settings.port}"
        found[f"{name} API"] = ("api", f"{base}/metrics", f"{base}/health/ready")
    workers = (
        ("relay orders", "relay", orders, orders.relay_metrics_port),
        ("relay payments", "relay", payments, payments.relay_metrics_port),
        ("consume order-created", "consumer", payments, payments.processor_metrics_port),
        ("consume payment-results", "consumer", orders, orders.payment_results_metrics_port),
        ("projector", "projector", customers, customers.projector_metrics_port),
    )
    for name, kind, settings, port in workers:
        url = f"http://{_local(settings.metrics_host)}:{port}/metrics" if port else None
        found[name] = (kind, url, None)
    return found


def metrics_endpoints(env: Mapping[str, str]) -> str:
    """Where `ordersystem run`'s processes serve their metrics, a line each."""
    lines = [f"  {name}: {url or 'off'}" for name, (_, url, _) in process_endpoints(env).items()]
    return "metrics:\n" + "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    """Every process's health, position, lag and rate: once, or live until Ctrl-C."""
    from rich.console import Console
    from rich.live import Live

    from ordersystem.status import Target, rows, table

    targets = [
        Target(name, kind, url, ready)
        for name, (kind, url, ready) in process_endpoints(os.environ).items()
        if url is not None
    ]
    console = Console()
    if args.once:
        found = rows(targets, interval=args.interval)
        console.print(table(found))
        return 0 if all(r.healthy for r in found) else 1
    with Live(table(rows(targets, interval=args.interval)), console=console) as live:
        try:
            while True:
                live.update(table(rows(targets, interval=args.interval)))
        except KeyboardInterrupt:
            return 0


def _local(host: str) -> str:
    """An address to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host
