"""The `ordersystem` command: every process and operation of the system, each with --help.

The arguments are parsed here; what each command does is in ordersystem.commands.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from contracts.partitions import MAX_PARTITIONS, PartitionError, partition_count
from ordersystem.commands import (
    READ_MODELS,
    SERVICES,
    cmd_audit,
    cmd_catalogue,
    cmd_consume,
    cmd_migrate,
    cmd_preflight,
    cmd_project,
    cmd_rebuild,
    cmd_relay,
    cmd_repartition,
    cmd_replay,
    cmd_run,
    cmd_seed,
    cmd_serve,
    cmd_status,
    cmd_verify,
)
from servicekit.env import SettingsError

Command = Callable[[argparse.Namespace], int]


def partitions_argument(raw: str) -> int:
    """A layout's number of partitions, 1 to MAX_PARTITIONS."""
    try:
        return partition_count(raw)
    except PartitionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ordersystem",
        description="Event-sourced orders and customers. Settings come from the environment "
        "(see README.md, 'Configuration').",
    )
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    add(
        "run",
        cmd_run,
        "start every process (three APIs, two relays, the consumers), restart any that dies",
    )
    status = add(
        "status",
        cmd_status,
        "a live table of every process `ordersystem run` starts, from its metrics: health, "
        "log position, lag in events and seconds, rate; Ctrl-C ends it",
    )
    status.add_argument(
        "--once",
        action="store_true",
        help="print the table a single time and exit: 0 when every process is healthy, 1 if not",
    )
    status.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between the two scrapes a rate is measured over, and between refreshes",
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
    repartition = add(
        "repartition",
        cmd_repartition,
        "rebuild every read model into a layout of PARTITIONS partitions while the old "
        "layout keeps serving, then swap it in; the old layout's projectors then wait, "
        "and those started with ORDER_PARTITIONS=PARTITIONS go on from the swap",
    )
    repartition.add_argument(
        "partitions", type=partitions_argument, help=f"the new layout: 1 to {MAX_PARTITIONS}"
    )
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
    migrate = add(
        "migrate",
        cmd_migrate,
        "create the databases and apply the schema steps not applied yet (each process does"
        " this too as it starts; an up-to-date database takes no DDL)",
    )
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
    handler: Command = args.handler
    try:
        return handler(args)
    except SettingsError as exc:  # a setting it cannot read: say which, no traceback
        print(f"ordersystem {args.command}: {exc}", file=sys.stderr)
        return 2
