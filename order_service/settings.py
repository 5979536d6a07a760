"""The order service's configuration, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.events import ORDERS_EXCHANGE, PAYMENTS_EXCHANGE
from servicekit import settings as shared
from servicekit.env import SettingsError, read, setting
from servicekit.postgres import PostgresSettings


def commit_mode(value: str) -> str:
    if value not in ("group", "single"):
        raise SettingsError(f"ORDER_COMMIT_MODE must be group or single, not {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    postgres: PostgresSettings
    host: str = setting("127.0.0.1", "ORDER_API_HOST")
    port: int = setting(3001, "ORDER_API_PORT")
    rate_limit: float = shared.rate_limit()
    customer_service_url: str = setting("http://127.0.0.1:3002", "CUSTOMER_SERVICE_URL")
    customer_connect_timeout: float = setting(0.5, "CUSTOMER_CONNECT_TIMEOUT")
    customer_read_timeout: float = setting(1.0, "CUSTOMER_READ_TIMEOUT")
    breaker_threshold: int = setting(5, "CUSTOMER_BREAKER_THRESHOLD")
    breaker_reset_after: float = setting(5.0, "CUSTOMER_BREAKER_RESET_AFTER")
    customer_cache_ttl: float = setting(0.5, "CUSTOMER_CACHE_TTL")
    customer_service_token: str = setting("", "CUSTOMER_SERVICE_TOKEN", secret=True)
    db_pool_size: int = setting(10, "ORDER_DB_POOL_SIZE")
    amqp_url: str = shared.rabbitmq_url()
    exchange: str = setting(ORDERS_EXCHANGE, "ORDERS_EXCHANGE")
    relay_page_size: int = shared.relay_page_size()
    partitions: int = shared.order_partitions()
    relay_interval: float = shared.relay_interval()
    batch_interval: float = shared.batch_interval()
    payments_exchange: str = setting(PAYMENTS_EXCHANGE, "PAYMENTS_EXCHANGE")
    # "single": one transaction per save (the baseline of the group-commit benchmark)
    commit_mode: str = setting("group", "ORDER_COMMIT_MODE", parse=commit_mode)
    api_threads: int = setting(64, "ORDER_API_THREADS")  # the synchronous calls run on these
    payment_results_queue: str = setting("orders.payment-results", "PAYMENT_RESULTS_QUEUE")
    metrics_host: str = shared.metrics_host()
    relay_metrics_port: int = setting(9101, "ORDERS_RELAY_METRICS_PORT")  # 0: none
    payment_results_metrics_port: int = setting(9104, "PAYMENT_RESULTS_METRICS_PORT")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        database = PostgresSettings.from_env(env, dbname_var="ORDERS_DB", dbname="orders")
        return read(cls, env, postgres=database)

    def eventsourcing_env(self) -> dict[str, str]:
        return self.postgres.eventsourcing_env(self.db_pool_size)
