"""The `ordersystem` command: every process and operation of the system, each with --help."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import uvloop

from ordersystem.preflight import preflight, report

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Service:
    factory: str  # "module:function" building the ASGI app from the environment
    env_prefix: str

    def host(self) -> str:
        return os.environ.get(f"{self.env_prefix}_API_HOST", "127.0.0.1")

    def port(self, default: int) -> int:
        return int(os.environ.get(f"{self.env_prefix}_API_PORT", default))


SERVICES = {
    "orders": (Service("order_service.api:app_from_env", "ORDER"), 3001),
    "customers": (Service("customer_service.api:app_from_env", "CUSTOMER"), 3002),
    "payments": (Service("payment_service.api:app_from_env", "PAYMENT"), 3003),
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

    service, default_port = SERVICES[args.service]
    host = args.host or service.host()
    port = args.port or service.port(default_port)
    # The app factory runs in the server's worker and reads its settings from the environment.
    os.environ[f"{service.env_prefix}_API_HOST"] = host
    os.environ[f"{service.env_prefix}_API_PORT"] = str(port)
    serve(service.factory, host=host, port=port, workers=args.workers)
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    if args.service == "payments":
        from payment_service.relay import run_relay as run_payment_relay
        from payment_service.settings import Settings as PaymentSettings

        uvloop.run(run_payment_relay(PaymentSettings.from_env(os.environ)))
    else:
        from order_service.relay import run_relay
        from order_service.settings import Settings

        uvloop.run(run_relay(Settings.from_env(os.environ)))
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    if args.stream == "order-created":
        from payment_service.processor import run_processor
        from payment_service.settings import Settings as PaymentSettings

        uvloop.run(run_processor(PaymentSettings.from_env(os.environ)))
    else:
        from order_service.payment_results import run_payment_results
        from order_service.settings import Settings

        uvloop.run(run_payment_results(Settings.from_env(os.environ)))
    return 0


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

    uvloop.run(run_projector(Settings.from_env(os.environ), args.projection))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from customer_service.projector import rebuild_command
    from customer_service.settings import Settings

    return uvloop.run(rebuild_command(Settings.from_env(os.environ), args.projection))


def cmd_verify(args: argparse.Namespace) -> int:
    from customer_service.projector import verify_command
    from customer_service.settings import Settings

    return uvloop.run(verify_command(Settings.from_env(os.environ), args.projection))


def cmd_audit(args: argparse.Namespace) -> int:
    from order_service.application import OrderNotFoundError, Orders
    from order_service.audit import history_table, state_block
    from order_service.settings import Settings

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


def moment(text: str) -> datetime:
    """An ISO 8601 timestamp; one without a zone is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a position (1 or more): {text!r}")
    return int(text)


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.service in ("customers", "all"):
        from customer_service.settings import Settings as CustomerSettings
        from customer_service.store import migrate

        applied = migrate(CustomerSettings.from_env(os.environ).postgres)
        print(f"customers: {applied} migration(s) applied")
    if args.service in ("orders", "all"):
        from order_service.application import Orders
        from order_service.settings import Settings as OrderSettings
        from servicekit.postgres import create_application

        settings = OrderSettings.from_env(os.environ)
        make = partial(Orders, env=settings.eventsourcing_env())
        create_application(make, settings.postgres).close()  # creates the tables it lacks
        print("orders: event store and order summaries ready")
    if args.service in ("payments", "all"):
        from payment_service.application import Payments
        from payment_service.settings import Settings as PaymentSettings
        from servicekit.postgres import create_application

        payment_settings = PaymentSettings.from_env(os.environ)
        make_payments = partial(Payments, env=payment_settings.eventsourcing_env())
        create_application(make_payments, payment_settings.postgres).close()
        print("payments: event store ready")
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
    processes = []
    for name in ("customers", "orders", "payments"):
        service, default_port = SERVICES[name]
        host = "127.0.0.1" if service.host() in ("0.0.0.0", "::") else service.host()
        url = f"http://{host}:{service.port(default_port)}/health/ready"
        processes.append(Process(name, command("serve", name), url))
    processes.append(Process("relay", command("relay", "orders")))
    processes.append(Process("payment-relay", command("relay", "payments")))
    processes.append(Process("payments", command("consume", "order-created")))
    processes.append(Process("payment-results", command("consume", "payment-results")))
    processes.append(Process("projector", command("project", *READ_MODELS)))  # both, together
    asyncio.run(supervise(processes))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ordersystem",
        description="Event-sourced orders and customers. Settings come from the environment "
        "(see README.md, 'Configuration').",
    )
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    add(
        "run",
        cmd_run,
        "start every process (three APIs, two relays, the consumers), restart any that dies",
    )
    serve = add("serve", cmd_serve, "serve one HTTP API in the foreground")
    serve.add_argument("service", choices=sorted(SERVICES), help="which API")
    serve.add_argument("--host", help="bind address (default: $<SERVICE>_API_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port (default: 3001 orders, 3002 customers, 3003 payments)"
    )
    serve.add_argument("--workers", type=int, default=1, help="server worker processes")
    relay = add(
        "relay",
        cmd_relay,
        "publish a service's event log to RabbitMQ (orders: exchange $ORDERS_EXCHANGE, "
        "payments: $PAYMENTS_EXCHANGE), in order, with confirms; a second instance waits "
        "as a hot standby",
    )
    relay.add_argument("service", nargs="?", default="orders", choices=["orders", "payments"])
    consume = add(
        "consume",
        cmd_consume,
        "order-created: the payment service decides each new order's payment; "
        "payment-results: the order service records each payment outcome on its order",
    )
    consume.add_argument("stream", choices=["order-created", "payment-results"])
    project = add(
        "project",
        cmd_project,
        "keep read models up to date from the orders exchange, each event exactly once; "
        "several named read models share one projector: one queue, one transaction per batch",
    )
    project.add_argument("projection", nargs="+", choices=READ_MODELS, help="which read models")
    for name, handler, text in (
        (
            "rebuild",
            cmd_rebuild,
            "rebuild a read model from the order event feed while the API keeps serving "
            "the old one; the live projector resumes after it without double counting",
        ),
        (
            "verify",
            cmd_verify,
            "recompute a read model from the event feed and compare it with the live one "
            "at the same position; exit 1 on any drift",
        ),
    ):
        command_parser = add(name, handler, text)
        command_parser.add_argument("projection", choices=READ_MODELS, help="which read model")
    audit = add("audit", cmd_audit, "print an order's event stream, or its state at a moment")
    audit.add_argument("what", choices=["order"], help="what to audit")
    audit.add_argument("order_id", type=uuid.UUID, help="the order's id")
    audit.add_argument("--at", type=moment, help="show the order as it was then (ISO 8601)")
    replay = add(
        "replay",
        cmd_replay,
        "publish a range of the order event log again, exactly as first published; "
        "consumers drop what they already applied",
    )
    replay.add_argument("--from", dest="start", type=positive, required=True, help="first position")
    replay.add_argument("--to", type=positive, required=True, help="last position (inclusive)")
    replay.add_argument("--queue", help="straight to this queue instead of the orders exchange")
    catalogue = add(
        "catalogue", cmd_catalogue, "write the event catalogue (JSON Schema per event, examples)"
    )
    catalogue.add_argument("--output", default="docs/events.md", help="where to write it")
    catalogue.add_argument("--check", action="store_true", help="only check it is up to date")
    migrate = add("migrate", cmd_migrate, "create the databases and tables that are missing")
    migrate.add_argument("service", nargs="?", default="all", choices=["all", *sorted(SERVICES)])
    seed = add("seed", cmd_seed, "insert the predefined customers 1..5 (idempotent)")
    seed.add_argument("what", choices=["customers"], help="what to seed")
    add("preflight", cmd_preflight, "check that PostgreSQL and RabbitMQ answer")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    handler: Handler = args.handler
    return handler(args)
