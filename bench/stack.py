"""The system as processes (the order path, or all of it), and the CPU and memory they use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika

from bench.procfs import peak_rss_mb, pids_named, with_children
from customer_service.projector import queue_name
from ordersystem.commands import READ_MODELS
from tests.broker import AMQP_URL, queue_exists
from tests.support import Databases, ServiceProcess, Worker, eventually


@dataclass
class Stack:
    """The whole system as processes: three APIs, two relays, projectors and consumers."""

    customers: ServiceProcess
    orders: ServiceProcess
    payments: ServiceProcess
    workers: list[Worker]
    customers_db: Any
    orders_db: Any
    queues: list[str]
    exchanges: list[str]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for api in (self.orders, self.payments, self.customers):
            api.stop()

    async def queues_declared(self) -> None:
        """Wait (bounded) until every consumer has declared its queue: a relay holds back
        what no queue is bound for yet, and a projector started under load would catch up
        from the feed instead of consuming."""
        for queue in self.queues:
            await eventually(partial(queue_exists, queue), within=30, what=f"queue {queue}")

    async def delete_messaging(self) -> None:
        """The queues and exchanges this stack's processes declared."""
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            for queue in self.queues:
                for name in (queue, f"{queue}.dlq"):
                    await channel.queue_delete(name)
                await channel.exchange_delete(f"{queue}.dlx")
            for exchange in self.exchanges:
                await channel.exchange_delete(exchange)

    def peak_memory_mb(self) -> dict[str, float]:
        processes = {
            "orders API": self.orders.process,
            "customers API": self.customers.process,
            "payments API": self.payments.process,
        }
        processes |= {" ".join(w.command): w.process for w in self.workers}
        return {
            name: peak_rss_mb(with_children(p.pid))
            for name, p in processes.items()
            if p is not None
        }

    def pids(self) -> dict[str, list[int]]:
        """Every process of the stack with its workers, and the servers it uses."""
        named = {"orders API": self.orders.process, "customers API": self.customers.process}
        named |= {"payments API": self.payments.process}
        named |= {" ".join(w.command): w.process for w in self.workers}
        found = {name: _family(p.pid) for name, p in named.items() if p is not None}
        found["postgres (all backends)"] = pids_named("postgres")
        found["rabbitmq"] = pids_named("beam.smp")
        found["load generator"] = [os.getpid()]
        return found


def _family(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(c) for c in children.read_text().split())] if children.exists() else [pid]


def start_stack(databases: Databases, prefix: str, *, whole: bool) -> Stack:
    """The order path (customers, orders, relay, orders-count projector), or with `whole`,
    every process of the system (payments, both relays, both projectors)."""
    customers_db, orders_db = databases.fresh("bench_customers"), databases.fresh("bench_orders")
    payments_db = databases.fresh("bench_payments")
    prefix = f"{prefix}.{'whole' if whole else 'path'}"
    messaging = {
        "ORDERS_EXCHANGE": f"{prefix}.orders",
        "PAYMENTS_EXCHANGE": f"{prefix}.payments",
        "PAYMENT_QUEUE": f"{prefix}.payments.order-created",
        "PAYMENT_RESULTS_QUEUE": f"{prefix}.orders.payment-results",
        "PROJECTION_QUEUE_PREFIX": f"{prefix}.read",
        "LOG_LEVEL": "WARNING",
        # One client (this load generator) drives all the load: the per-client limit, which
        # exists to keep one client from taking the whole service, would cap the measurement.
        "API_RATE_LIMIT": "0",
    }
    customers, orders = ServiceProcess("customers", {}), ServiceProcess("orders", {})
    payments = ServiceProcess("payments", {"PAYMENTS_DB": payments_db.dbname, **messaging})
    read_env = {"CUSTOMERS_DB": customers_db.dbname, "ORDER_SERVICE_URL": orders.url, **messaging}
    customers.env = read_env
    orders.env = {"ORDERS_DB": orders_db.dbname, "CUSTOMER_SERVICE_URL": customers.url, **messaging}
    # The order path keeps orders_count; the whole system keeps every read model, in one
    # projector, as `ordersystem run` does.
    read_models = READ_MODELS if whole else ("orders-count",)
    workers = [
        Worker(("project", *read_models), read_env),
        Worker(("relay", "orders"), orders.env),
    ]
    if whole:
        workers += [
            Worker(("consume", "order-created"), payments.env),
            Worker(("consume", "payment-results"), orders.env),
            Worker(("relay", "payments"), payments.env),
        ]
    for api in (customers, orders, payments) if whole else (customers, orders):
        api.start()
    for worker in workers:
        worker.start()
    queues = [queue_name(f"{prefix}.read", read_models)]
    if whole:
        queues += [messaging["PAYMENT_QUEUE"], messaging["PAYMENT_RESULTS_QUEUE"]]
    exchanges = [messaging["ORDERS_EXCHANGE"], messaging["PAYMENTS_EXCHANGE"]]
    return Stack(customers, orders, payments, workers, customers_db, orders_db, queues, exchanges)
