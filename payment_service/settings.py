"""The payment service's configuration, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.events import ORDERS_EXCHANGE, PAYMENTS_EXCHANGE
from servicekit import settings as shared
from servicekit.env import read, setting
from servicekit.postgres import PostgresSettings


@dataclass(frozen=True, kw_only=True)
class Settings:
    postgres: PostgresSettings
    host: str = setting("127.0.0.1", "PAYMENT_API_HOST")
    port: int = setting(3003, "PAYMENT_API_PORT")
    rate_limit: float = shared.rate_limit()
    amqp_url: str = shared.rabbitmq_url()
    orders_exchange: str = setting(ORDERS_EXCHANGE, "ORDERS_EXCHANGE")
    exchange: str = setting(PAYMENTS_EXCHANGE, "PAYMENTS_EXCHANGE")  # its relay publishes here
    queue: str = setting("payments.order-created", "PAYMENT_QUEUE")
    relay_page_size: int = shared.relay_page_size()
    relay_interval: float = shared.relay_interval()
    batch_interval: float = shared.batch_interval()
    db_pool_size: int = setting(5, "PAYMENT_DB_POOL_SIZE")
    metrics_host: str = shared.metrics_host()
    relay_metrics_port: int = setting(9102, "PAYMENTS_RELAY_METRICS_PORT")  # 0: none
    processor_metrics_port: int = setting(9103, "PAYMENT_PROCESSOR_METRICS_PORT")

    @property
    def partitions(self) -> int:
        """The payment log is not partitioned: one order-service consumer reads it."""
        return 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        database = PostgresSettings.from_env(env, dbname_var="PAYMENTS_DB", dbname="payments")
        return read(cls, env, postgres=database)

    def eventsourcing_env(self) -> dict[str, str]:
        return self.postgres.eventsourcing_env(self.db_pool_size)
