"""The Orders application on a real Postgres: summaries, idempotency under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import partial

import psycopg
import pytest

from order_service.application import MIGRATIONS, Orders
from order_service.usecases import IdempotencyKeyReusedError, PaymentResult, PlaceOrder
from servicekit.application import LoopSaves, open_loop_pool
from servicekit.postgres import PostgresSettings
from servicekit.schema import migrated
from tests.support import Databases

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(databases: Databases) -> PostgresSettings:
    return databases.fresh("orders", MIGRATIONS)


@pytest.fixture(scope="module")
def orders(database: PostgresSettings) -> Iterator[Orders]:
    app = Orders(env={**database.eventsourcing_env(), "POSTGRES_POOL_SIZE": "8"})
    yield app
    app.close()


@pytest.fixture
async def on_loop(orders: Orders, database: PostgresSettings) -> AsyncIterator[Orders]:
    """The same application, saving on the event loop over a pool of its own, as the API
    and the payment-results consumer do."""
    pool = await open_loop_pool(database.conninfo())
    orders.saves_from(pool)
    yield orders
    orders.on_loop = LoopSaves(orders)
    await pool.close()


def count(database: PostgresSettings, table: str) -> int:
    with psycopg.connect(database.conninfo()) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def widget(customer_id: int, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder(
        customer_id=customer_id, product_name="Widget", quantity=quantity, price=Decimal("9.99")
    )


def test_a_refused_save_leaves_neither_event_nor_summary(
    orders: Orders, database: PostgresSettings
) -> None:
    orders.place(widget(customer_id=102), idempotency_key="pg-key-1")
    events, summaries = count(database, "orders_events"), count(database, "order_summaries")

    with pytest.raises(IdempotencyKeyReusedError):
        orders.place(widget(customer_id=102, quantity=5), idempotency_key="pg-key-1")

    assert count(database, "orders_events") == events
    assert count(database, "order_summaries") == summaries


def test_concurrent_duplicates_of_one_key_create_exactly_one_order(
    orders: Orders, database: PostgresSettings
) -> None:
    events = count(database, "orders_events")

    with ThreadPoolExecutor(max_workers=8) as pool:
        placements = list(
            pool.map(
                lambda _: orders.place(widget(customer_id=103), idempotency_key="pg-key-2"),
                range(16),
            )
        )

    assert sum(p.created for p in placements) == 1
    assert len({p.order.id for p in placements}) == 1
    assert count(database, "orders_events") == events + 1
    assert len(orders.list_orders(customer_id=103, limit=50).orders) == 1


def test_an_order_reads_back_as_it_was_stored(orders: Orders) -> None:
    placed = orders.place(widget(customer_id=105, quantity=3))

    assert orders.get_order(placed.order.id) == placed.order
    assert orders.get_order(placed.order.id, version=1).total == Decimal("29.97")


def test_with_group_commit_concurrent_duplicates_still_create_one_order(
    orders: Orders, database: PostgresSettings
) -> None:
    grouped = Orders(env=database.eventsourcing_env(), group_commit=True)
    events = count(database, "orders_events")
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            placements = list(
                pool.map(
                    lambda n: grouped.place(
                        widget(customer_id=106),
                        idempotency_key="pg-key-3" if n % 2 else None,
                    ),
                    range(32),
                )
            )
    finally:
        grouped.close()

    assert sum(p.created for p in placements) == 17  # 16 without a key, 1 of the 16 with it
    assert count(database, "orders_events") == events + 17
    assert len(orders.list_orders(customer_id=106, limit=100).orders) == 17


def test_a_process_starting_while_others_write_takes_no_table_lock(
    orders: Orders, database: PostgresSettings
) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    with psycopg.connect(database.conninfo()) as writer:
        # What every insert transaction holds while it writes.
        writer.execute("LOCK TABLE orders_events IN EXCLUSIVE MODE")
        make = partial(Orders, env=database.eventsourcing_env())
        starting = pool.submit(migrated, make, database, MIGRATIONS)  # as every process starts
        try:
            started = starting.result(timeout=10)  # DDL would wait here for the writer
        finally:
            writer.rollback()
            pool.shutdown()
    started.close()


async def test_a_batch_of_payment_results_records_each_once_in_one_transaction(
    on_loop: Orders, database: PostgresSettings
) -> None:
    orders = on_loop
    paid, declined = (orders.place(widget(7)).order.id for _ in range(2))
    stranger = uuid.uuid4()
    payment = uuid.uuid4()
    before = transactions(orders, database)

    verdicts = await orders.record_payments(
        [
            PaymentResult(order_id=paid, payment_id=payment, succeeded=True),
            PaymentResult(order_id=declined, payment_id=uuid.uuid4(), succeeded=False),
            PaymentResult(order_id=stranger, payment_id=uuid.uuid4(), succeeded=True),
        ]
    )

    assert verdicts == [None, None, f"no order {stranger}"]
    assert [e.type for e in orders.history(paid)] == ["Placed", "Paid"]
    assert [e.type for e in orders.history(declined)] == ["Placed", "PaymentFailed", "Cancelled"]
    assert transactions(orders, database) - before == 1


async def test_a_repeat_within_a_batch_or_after_it_changes_nothing(on_loop: Orders) -> None:
    orders = on_loop
    order_id = orders.place(widget(8)).order.id
    result = PaymentResult(order_id=order_id, payment_id=uuid.uuid4(), succeeded=True)

    assert await orders.record_payments([result, result]) == [None, None]
    assert await orders.record_payments([result]) == [None]

    assert [e.type for e in orders.history(order_id)] == ["Placed", "Paid"]
    assert orders.get_order(order_id).version == 2


def transactions(orders: Orders, database: PostgresSettings) -> int:
    """Distinct transactions that wrote order events (each event's xmin)."""
    table = orders.recorder.events_table_name  # type: ignore[attr-defined]
    with psycopg.connect(database.conninfo()) as conn:
        row = conn.execute(f"SELECT count(DISTINCT xmin::text) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


async def test_several_orders_are_read_in_one_query_each_in_version_order(
    on_loop: Orders,
) -> None:
    first, second = (on_loop.place(widget(9)).order.id for _ in range(2))
    on_loop.transition(first, "confirm")
    stranger = uuid.uuid4()

    streams = await on_loop.on_loop.streams([second, stranger, first])
    loaded = await on_loop.on_loop.aggregates([first, stranger])

    assert set(streams) == {first, second}
    assert [e.originator_version for e in streams[first]] == [1, 2]
    assert [e.originator_version for e in streams[second]] == [1]
    assert list(loaded) == [first]
    assert loaded[first].version == 2


@pytest.mark.parametrize(("group_commit", "expected"), [(False, 5), (True, 1)])
async def test_placing_on_the_loop_shares_transactions_only_with_group_commit(
    database: PostgresSettings, group_commit: bool, expected: int
) -> None:
    app = Orders(env=database.eventsourcing_env(), group_commit=group_commit)
    pool = await open_loop_pool(database.conninfo())
    app.saves_from(pool)
    try:
        before = transactions(app, database)
        await asyncio.gather(*(app.place_from_loop(widget(10)) for _ in range(5)))

        assert transactions(app, database) - before == expected
    finally:
        await pool.close()
        app.close()
