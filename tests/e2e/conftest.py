"""The whole system as real processes on free ports, with databases, exchanges and queues."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aio_pika
import httpx
import psycopg
import pytest

from contracts.messaging import partition_queue, partitioned_exchange
from contracts.partitions import layout
from customer_service.projector import PROJECTIONS, queue_name
from projections.orders_count import OrdersCount
from projections.tracking import SESSION_LOCK, SESSION_UNLOCK, partition_in, tracked_names
from servicekit.postgres import PostgresSettings
from tests.broker import AMQP_URL, Topology, queue_exists
from tests.support import (
    RUN_ID,
    Databases,
    ServiceProcess,
    Worker,
    eventually,
    projector_process,
    relay_process,
)

pytestmark = pytest.mark.e2e


@dataclass
class System:
    customers: ServiceProcess
    orders: ServiceProcess
    payments: ServiceProcess
    orders_db: PostgresSettings
    customers_db: PostgresSettings
    payments_db: PostgresSettings
    prefix: str  # every exchange and queue of this system is named <prefix>.<something>
    topology: Topology | None = None  # a test queue bound to the orders exchange, to inspect
    workers: dict[str, Worker] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)  # for every process (e.g. tracing)

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.orders"

    @property
    def queue_prefix(self) -> str:  # each projector's queue is <queue_prefix>.<projection>
        return f"{self.prefix}.read"

    @property
    def projection_queue(self) -> str:
        """The projector's queue (it keeps every read model, as `ordersystem run` starts it)."""
        return queue_name(self.queue_prefix, list(PROJECTIONS))

    @property
    def partitions(self) -> int:
        """The order log's partitions (ORDER_PARTITIONS in `env`; 1 when unset)."""
        return int(self.env.get("ORDER_PARTITIONS", "1"))

    def projection_queues(self) -> list[str]:
        """The projector's queue, or each partition's (contracts.messaging)."""
        if self.partitions == 1:
            return [self.projection_queue]
        return [partition_queue(self.projection_queue, str(p)) for p in layout(self.partitions)]

    def messaging_env(self) -> dict[str, str]:
        return {
            "ORDERS_EXCHANGE": self.exchange,
            "PAYMENTS_EXCHANGE": f"{self.prefix}.payments",
            "PAYMENT_QUEUE": f"{self.prefix}.payments.order-created",
            "PAYMENT_RESULTS_QUEUE": f"{self.prefix}.orders.payment-results",
        }

    def counts(self) -> dict[int, int]:
        """orders_count as the read model has it: each customer with any orders."""
        with psycopg.connect(self.customers_db.conninfo()) as conn:
            try:
                rows = conn.execute("SELECT customer_id, orders_count FROM orders_count").fetchall()
            except psycopg.errors.UndefinedTable:  # no projector has made it yet
                return {}
        return {int(c): int(n) for c, n in rows if n}

    def orders_per_customer(self) -> dict[int, int]:
        """The truth orders_count is kept from: what the order service stored."""
        with psycopg.connect(self.orders_db.conninfo()) as conn:
            rows = conn.execute(
                "SELECT customer_id, count(*) FROM order_summaries GROUP BY customer_id"
            ).fetchall()
        return {int(c): int(n) for c, n in rows}

    def counted_exactly(self) -> bool:
        """Every stored order counted, once."""
        stored = self.orders_per_customer()
        return bool(stored) and self.counts() == stored

    def tracking_rows(self, model: str = OrdersCount.name) -> dict[str, dict[str, int]]:
        """A read model's tracking rows: one, or each partition's (zeros before its first)."""
        names = tracked_names(model, self.partitions)
        keys = ("position", "applied", "duplicates", "healed", "poisoned")
        with psycopg.connect(self.customers_db.conninfo()) as conn:
            try:
                rows = conn.execute(
                    f"SELECT name, {', '.join(keys)} FROM projection_positions"
                    " WHERE name = ANY(%s)",
                    (names,),
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                rows = []
        found = {str(row[0]): dict(zip(keys, row[1:], strict=True)) for row in rows}
        return {name: found.get(name, dict.fromkeys(keys, 0)) for name in names}

    def tracking(self, model: str = OrdersCount.name) -> dict[str, int]:
        """Its counters summed over the partitions, and the furthest position."""
        rows = list(self.tracking_rows(model).values())
        total = {key: sum(row[key] for row in rows) for key in rows[0]}
        total["position"] = max(row["position"] for row in rows)
        return total

    def applied_up_to(self, position: int, model: str = OrdersCount.name) -> bool:
        """Whether the read model has applied every public event up to `position`: each
        partition's next event in the feed, if any, lies beyond it."""
        for name, row in self.tracking_rows(model).items():
            query: dict[str, str | int] = {"after": row["position"], "limit": 1}
            if (partition := partition_in(name)) is not None:
                query["partition"] = partition
            following = httpx.get(f"{self.orders.url}/api/v1/events", params=query).json()
            if following and following[0]["position"] <= position:
                return False
        return True

    def consumer_queues(self) -> list[str]:
        env = self.messaging_env()
        return [*self.projection_queues(), env["PAYMENT_QUEUE"], env["PAYMENT_RESULTS_QUEUE"]]

    def stored_orders(self) -> int:
        """How many orders the event store holds (streams, not events: payments add events)."""
        with psycopg.connect(self.orders_db.conninfo()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM orders_events WHERE originator_version = 1"
            ).fetchone()
            assert row is not None
            return int(row[0])

    def projector_env(self) -> dict[str, str]:
        return {
            "CUSTOMERS_DB": self.customers_db.dbname,
            "ORDER_SERVICE_URL": self.orders.url,
            "PROJECTION_QUEUE_PREFIX": self.queue_prefix,
            **self.messaging_env(),
            **self.env,
        }

    def projectors(self) -> list[str]:
        """The names of its projector workers: one, or two sharing the partitions."""
        return ["projector"] if self.partitions == 1 else ["projector", "projector-2"]

    def start_workers(self) -> None:
        self.workers["relay"] = relay_process(self.orders.env).start()
        self.workers["payment-relay"] = Worker(("relay", "payments"), self.payments.env).start()
        self.workers["payments"] = Worker(("consume", "order-created"), self.payments.env).start()
        self.workers["payment-results"] = Worker(
            ("consume", "payment-results"), self.orders.env
        ).start()
        for name in self.projectors():  # two processes share the partitions, if any
            self.workers[name] = projector_process(self.projector_env()).start()

    async def wait_for_consumer_queues(self) -> None:
        """Messages published before a consumer's queue exists would never reach it."""
        for queue in self.consumer_queues():
            await eventually(partial(queue_exists, queue), within=30, what=f"queue {queue}")

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        for service in (self.orders, self.payments, self.customers):
            service.stop()

    async def delete_messaging(self) -> None:
        for queue in self.consumer_queues():
            await Topology(exchange="", queue=queue).delete_queues()
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            payments = self.messaging_env()["PAYMENTS_EXCHANGE"]
            for exchange in (partitioned_exchange(self.exchange), self.exchange, payments):
                await channel.exchange_delete(exchange)


def start_system(
    databases: Databases,
    *,
    prefix: str = "",
    workers: bool = False,
    env: Mapping[str, str] | None = None,
) -> System:
    """The three APIs (and with `workers`, every worker process) on free ports; `env` is
    set for every process."""
    customers_db, orders_db = databases.fresh("customers"), databases.fresh("orders")
    payments_db = databases.fresh("payments")
    customers, orders = ServiceProcess("customers", {}), ServiceProcess("orders", {})
    payments = ServiceProcess("payments", {})
    system = System(
        customers,
        orders,
        payments,
        orders_db,
        customers_db,
        payments_db,
        prefix or f"t{RUN_ID}.{orders_db.dbname}",
        env=dict(env or {}),
    )
    customers.env = system.projector_env()
    orders.env = {
        "ORDERS_DB": orders_db.dbname,
        "CUSTOMER_SERVICE_URL": customers.url,
        "CUSTOMER_BREAKER_RESET_AFTER": "1",
        **system.messaging_env(),
        **system.env,
    }
    payments.env = {"PAYMENTS_DB": payments_db.dbname, **system.messaging_env(), **system.env}
    try:
        for service in (customers, orders, payments):
            service.start()
        if workers:
            system.start_workers()
    except BaseException:
        system.stop()
        raise
    return system


@contextlib.contextmanager
def projector_held_back(system: System) -> Iterator[None]:
    """The projector paused while in the block: it takes its read models' advisory locks in
    every batch's transaction, so a session holding one holds it back, with its messages
    delivered and waiting."""
    names = tracked_names(OrdersCount.name, system.partitions)  # every partition's, if any
    with psycopg.connect(system.customers_db.conninfo(), autocommit=True) as holder:
        for name in names:
            holder.execute(SESSION_LOCK, (name,))
        try:
            yield
        finally:
            for name in names:
                holder.execute(SESSION_UNLOCK, (name,))


@contextlib.asynccontextmanager
async def running_system(
    databases: Databases, *, prefix: str = "", env: Mapping[str, str] | None = None
) -> AsyncIterator[System]:
    """Every process of a system, its consumers' queues declared; all removed after."""
    running = start_system(databases, prefix=prefix, workers=True, env=env)
    try:
        await running.wait_for_consumer_queues()
        yield running
    finally:
        running.stop()
        await running.delete_messaging()


@pytest.fixture(scope="session")
async def system(databases: Databases, rabbitmq_up: None) -> AsyncIterator[System]:
    async with running_system(databases, prefix=f"t{RUN_ID}.e2e") as running:
        running.topology = await Topology.declare_on(running.exchange, f"{running.prefix}.inspect")
        try:
            yield running
        finally:
            await running.topology.delete_queues()


@pytest.fixture(scope="module", params=[1, 4], ids=["unpartitioned", "4 partitions"])
async def both_layouts(
    databases: Databases, rabbitmq_up: None, request: pytest.FixtureRequest
) -> AsyncIterator[System]:
    """A module's own system, with the order log unpartitioned and then in four partitions
    shared by two projectors: what a module of read-model tests uses as its `system`."""
    prefix = f"t{RUN_ID}.{request.module.__name__.rsplit('.', 1)[-1]}.p{request.param}"
    env = {"ORDER_PARTITIONS": str(request.param)}
    async with running_system(databases, prefix=prefix, env=env) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for one async test (full URLs: each service has its own port)."""
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def wait_for_payment(system: System, order_id: str, status: str = "paid") -> dict[str, Any]:
    """Poll (bounded) until the order's payment_status is `status`; the order then."""
    order: dict[str, Any] = {}

    async with httpx.AsyncClient(base_url=system.orders.url, timeout=5) as client:

        async def settled() -> bool:
            order.update((await client.get(f"/api/v1/orders/{order_id}")).json())
            return bool(order["payment_status"] == status)

        try:
            await eventually(settled, within=15, what=f"order {order_id} {status}")
        except TimeoutError:
            raise AssertionError(f"order {order_id} not {status}: {order}") from None
    return order
