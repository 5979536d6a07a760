"""`ordersystem migrate`: the one schema step, as an operator runs it on new databases."""

from __future__ import annotations

import uuid

import pytest

from customer_service.store import MIGRATIONS as CUSTOMER_STEPS
from order_service.application import MIGRATIONS as ORDER_STEPS
from payment_service.application import MIGRATIONS as PAYMENT_STEPS
from servicekit.postgres import PostgresSettings
from tests.support import Databases, ordersystem, tables

pytestmark = pytest.mark.integration


def test_migrate_makes_every_database_a_process_needs_and_a_second_run_changes_nothing(
    databases: Databases, postgres_up: None
) -> None:
    names = {which: f"t_migrate_{which}_{uuid.uuid4().hex[:8]}" for which in ("o", "c", "p")}
    made = {which: PostgresSettings(dbname=name) for which, name in names.items()}
    databases.made.extend(made.values())  # dropped at the end of the run
    env = {"ORDERS_DB": names["o"], "CUSTOMERS_DB": names["c"], "PAYMENTS_DB": names["p"]}

    first = ordersystem("migrate", env=env)
    again = ordersystem("migrate", "orders", env=env)

    assert first.returncode == 0, first.stderr
    assert (
        f"orders: {len(ORDER_STEPS)} migration(s) applied to database {names['o']}" in first.stdout
    )
    assert (
        f"customers: {len(CUSTOMER_STEPS)} migration(s) applied to database {names['c']}"
        in first.stdout
    )
    assert (
        f"payments: {len(PAYMENT_STEPS)} migration(s) applied to database {names['p']}"
        in first.stdout
    )
    assert again.stdout.strip() == f"orders: 0 migration(s) applied to database {names['o']}"
    assert {"orders_events", "order_summaries", "relay_positions"} <= tables(made["o"])
    assert {"payments_events", "relay_positions"} <= tables(made["p"])
    assert {"customers", "orders_count", "orders_by_status", "projection_positions"} <= tables(
        made["c"]
    )
