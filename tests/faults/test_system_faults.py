"""The fault suite: the whole system under load, one fault each, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.broker import drain, publish_raw, rabbitmqctl
from tests.e2e.conftest import System, start_system
from tests.faults.harness import LAYOUTS, ORDERS, is_problem, run_scenario
from tests.support import (
    Databases,
    ServiceProcess,
    Worker,
    eventually,
    pg_ctlcluster,
    projector_process,
    relay_process,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("rabbitmq_up"),
    pytest.mark.timeout(1800),  # make faults drives 5,000 orders per scenario
]

WORKERS = ["relay", "projector", "payments", "payment-results"]


@pytest.fixture(params=LAYOUTS, ids=[f"P={p}" for p in LAYOUTS])
async def system(databases: Databases, request: pytest.FixtureRequest) -> AsyncIterator[System]:
    """The whole system, its order log in each of FAULT_PARTITIONS' layouts (with more
    than one partition, two projector processes share them)."""
    env = {"ORDER_PARTITIONS": str(request.param)}
    running = start_system(databases, workers=True, env=env)
    await running.wait_for_consumer_queues()
    yield running
    running.stop()
    await running.delete_messaging()


@pytest.mark.parametrize("worker", WORKERS)
async def test_kill_9_of_a_worker_under_load_then_restart_loses_and_doubles_nothing(
    system: System, worker: str
) -> None:
    process = system.workers[worker]

    await run_scenario(system, f"kill -9 {worker}", process.kill, process.start)


async def test_two_relays_and_two_projectors_at_once_count_each_order_once(
    system: System,
) -> None:
    extra: list[Worker] = []

    def second_ones() -> None:
        extra.append(relay_process(system.orders.env).start())
        extra.append(projector_process(system.projector_env()).start())

    try:
        await run_scenario(system, "two relays and two projectors", second_ones)
    finally:
        for worker in extra:
            worker.stop()


async def test_rabbitmq_stopped_and_started_under_load_loses_nothing(system: System) -> None:
    try:
        await run_scenario(
            system,
            "RabbitMQ stopped and started",
            lambda: rabbitmqctl("stop_app"),
            lambda: rabbitmqctl("start_app"),
        )
    finally:
        await rabbitmqctl("start_app")  # never leave the broker down, whatever happened


async def test_postgres_restarted_under_load_answers_503_meanwhile_and_recovers(
    system: System,
) -> None:
    answers: dict[str, tuple[int, bool, float]] = {}

    async def stop_postgres_and_ask_every_api() -> None:
        await pg_ctlcluster("stop")
        async with httpx.AsyncClient(timeout=10) as client:
            for service, path in [
                (system.orders, "/api/v1/orders"),
                (system.customers, "/api/v1/customers/1"),
                (system.payments, f"/api/v1/payments?order_id={uuid.uuid4()}"),
            ]:
                sent = time.monotonic()
                try:
                    response = await client.get(service.url + path)
                except httpx.TimeoutException:
                    answers[path] = (0, False, time.monotonic() - sent)  # it hung
                    continue
                took = time.monotonic() - sent
                answers[path] = (response.status_code, is_problem(response), took)

    try:
        figures = await run_scenario(
            system,
            "Postgres stopped and started",
            stop_postgres_and_ask_every_api,
            lambda: pg_ctlcluster("start"),
            commits_may_go_unheard=True,
            refusals=frozenset(
                {"503 database_unavailable", "503 customer_service_unavailable"}
            ),  # the order store is gone, or the customer service's database is
        )
    finally:
        await pg_ctlcluster("start")  # never leave the database down, whatever happened

    for path, (status, problem, took) in answers.items():
        assert (status, problem) == (503, True), (path, took)  # problem details, never a 500
        assert took < 6, path  # bounded by the pool's wait for a connection, never a hang
    assert set(figures.refused) <= {503}
    assert figures.refused.get(503, 0) > 0  # refused while it was down
    assert figures.created >= ORDERS // 3  # and orders flowed again after it returned


async def test_the_customer_service_stopped_fails_fast_and_recovers(system: System) -> None:
    # The load's customers may all be in the order service's cache for the whole outage,
    # so each step also asks for a customer no one has: no cache holds an answer for it,
    # and only the customer service can say it does not exist.
    answers: dict[str, tuple[int, str, float]] = {}

    async def ask_for_a_customer_nobody_has(when: str) -> None:
        order = {"customer_id": 10**12, "product_name": "probe", "quantity": 1, "price": "1"}
        async with httpx.AsyncClient(timeout=10) as client:
            sent = time.monotonic()
            response = await client.post(f"{system.orders.url}/api/v1/orders", json=order)
            code = response.json().get("code", "") if is_problem(response) else ""
            answers[when] = (response.status_code, code, time.monotonic() - sent)

    async def stop() -> None:
        await asyncio.to_thread(system.customers.stop)
        await ask_for_a_customer_nobody_has("stopped")

    async def restart() -> None:
        system.customers = await asyncio.to_thread(
            ServiceProcess("customers", system.customers.env, port=system.customers.port).start
        )

        async def reached_again() -> bool:
            await ask_for_a_customer_nobody_has("restarted")
            return answers["restarted"][0] != 503

        # Healed means the order service reaches it again: its breaker, opened by the
        # outage, refuses for CUSTOMER_BREAKER_RESET_AFTER before it lets a request through.
        await eventually(reached_again, what="the order service to reach the customer service")

    figures = await run_scenario(
        system,
        "customer service stopped",
        stop,
        restart,
        refusals=frozenset({"503 customer_service_unavailable"}),
    )

    status, code, took = answers["stopped"]
    assert (status, code) == (503, "customer_service_unavailable")
    assert took < 3  # refused fast while it was down
    assert answers["restarted"][:2] == (422, "customer_not_found")  # asked it again
    assert figures.created >= ORDERS // 3  # and orders flowed again after it returned


async def test_poison_mixed_into_live_traffic_is_set_aside_and_nothing_else_is(
    system: System,
) -> None:
    poison = max(20, ORDERS // 5)
    payments = system.messaging_env()["PAYMENTS_EXCHANGE"]

    async def mix_in() -> None:
        for n in range(poison):
            # Partitioned, a message reaches a projector only with a partition header.
            spread: dict[str, int | str] = {}
            if system.partitions > 1:
                spread["partition"] = f"{n % system.partitions}of{system.partitions}"
            await publish_raw(system.exchange, f"poison {n}".encode(), "order.created", spread)
            await publish_raw(payments, b'{"type": "payment.succeeded"}', "payment.succeeded")

    await run_scenario(system, f"{2 * poison} poison messages in live traffic", mix_in)

    projected = [len(await drain(f"{queue}.dlq")) for queue in system.projection_queues()]
    processed = len(await drain(f"{system.messaging_env()['PAYMENT_QUEUE']}.dlq"))
    results = len(await drain(f"{system.messaging_env()['PAYMENT_RESULTS_QUEUE']}.dlq"))
    assert (sum(projected), processed, results) == (poison, poison, poison)
