"""Fixtures shared by every test tier (servers, databases, service processes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ordersystem.preflight import check_postgres, check_rabbitmq
from servicekit.postgres import PostgresSettings
from tests.broker import AMQP_URL
from tests.support import Databases, require


@pytest.fixture(scope="session")
def postgres_up() -> None:
    require(check_postgres(PostgresSettings(dbname="postgres")))


@pytest.fixture(scope="session")
def databases(postgres_up: None) -> Iterator[Databases]:
    made = Databases()
    yield made
    made.drop_all()


@pytest.fixture(scope="session")
def rabbitmq_up() -> None:
    require(check_rabbitmq(AMQP_URL))
