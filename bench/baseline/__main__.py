"""`python -m bench.baseline <role>`: one process of the baseline (a benchmark fixture),
configured from the environment (bench/baseline/settings.py); `setup` and `teardown` make
and remove its databases, exchanges and queues."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from bench.baseline import handlers, schema, topology, wire
from bench.baseline.consumer import BatchConsumer, run_consumer
from bench.baseline.http import serve
from bench.baseline.outbox import run_publisher
from bench.baseline.settings import Settings

APIS = {
    "orders-api": "bench.baseline.orders_api:app_from_env",
    "customers-api": "bench.baseline.customers_api:app_from_env",
}


def _until_signalled(work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await work(stopping)

    asyncio.run(main())


def _log_level() -> str:
    return os.environ.get("LOG_LEVEL", "").strip().lower() or "warning"


def _consumer(settings: Settings, role: str) -> BatchConsumer[Any]:
    size = settings.consumer_batch
    if role == "orders-count":
        return BatchConsumer(wire.decode_order_created, handlers.count_orders, size)
    notify = settings.notify
    if role == "payments":
        return BatchConsumer(wire.decode_order_created, handlers.take_payments, size, notify=notify)
    return BatchConsumer(wire.decode_payment_outcome, handlers.record_payments, size, notify=notify)


def run(role: str, settings: Settings) -> None:
    if role in APIS:
        port = settings.orders_port if role == "orders-api" else settings.customers_port
        serve(APIS[role], host=settings.host, port=port, log_level=_log_level())
    elif role in ("orders-publisher", "payments-publisher"):
        service = role.removesuffix("-publisher")
        _until_signalled(lambda stopping: run_publisher(settings, service, stopping))
    elif role in ("orders-count", "payments", "payment-results"):
        consumer = _consumer(settings, role)
        _until_signalled(lambda stopping: run_consumer(settings, role, consumer, stopping))
    elif role == "setup":
        schema.migrate(settings)
        asyncio.run(topology.declare_exchanges(settings))
    elif role == "teardown":
        asyncio.run(topology.delete_all(settings))
        schema.drop(settings)
    else:
        raise SystemExit(f"unknown role {role!r}; one of {', '.join(ROLES)}")


ROLES = (*APIS, "orders-publisher", "payments-publisher", "orders-count", "payments")
ROLES += ("payment-results", "setup", "teardown")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__, f"\nroles: {', '.join(ROLES)}")
        return 0 if argv else 2
    logging.basicConfig(level=_log_level().upper())
    run(argv[0], Settings.from_env(os.environ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
