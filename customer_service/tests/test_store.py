"""The customers database: migrations and seed are idempotent; new ids follow the seed."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from customer_service.store import SEED, CustomerStore, migrate, seed
from servicekit.postgres import PostgresSettings
from tests.support import Databases

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(databases: Databases) -> PostgresSettings:
    settings = databases.fresh("customers_store")
    migrate(settings)
    seed(settings)
    return settings


def rows(database: PostgresSettings) -> list[tuple[object, ...]]:
    with psycopg.connect(database.conninfo()) as conn:
        return conn.execute(
            "SELECT id, customer_name, address FROM customers ORDER BY id"
        ).fetchall()


def test_migrating_again_applies_nothing(database: PostgresSettings) -> None:
    assert migrate(database) == 0


def test_seeding_again_changes_nothing(database: PostgresSettings) -> None:
    before = rows(database)

    assert seed(database) == 0
    assert rows(database) == before
    assert [r[0] for r in before[: len(SEED)]] == [1, 2, 3, 4, 5]


async def test_a_new_customer_gets_an_id_after_the_seeded_ones(
    database: PostgresSettings,
) -> None:
    async with AsyncConnectionPool(database.conninfo(), min_size=1, max_size=2) as pool:
        store = CustomerStore(pool)

        added = await store.add(customer_name="Barbara Liskov", address="MIT")
        found, position = await store.get(added.id)

    assert added.id > len(SEED)
    assert found == added
    assert (added.orders_count, position) == (0, 0)  # no order projected yet
