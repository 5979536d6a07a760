"""The customer service's configuration, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.events import ORDERS_EXCHANGE
from servicekit import settings as shared
from servicekit.env import read, setting
from servicekit.postgres import PostgresSettings


@dataclass(frozen=True, kw_only=True)
class Settings:
    postgres: PostgresSettings
    host: str = setting("127.0.0.1", "CUSTOMER_API_HOST")
    port: int = setting(3002, "CUSTOMER_API_PORT")
    rate_limit: float = shared.rate_limit()
    db_pool_size: int = setting(10, "CUSTOMER_DB_POOL_SIZE")
    # Its event feed heals a projector's gaps.
    order_service_url: str = setting("http://127.0.0.1:3001", "ORDER_SERVICE_URL")
    amqp_url: str = shared.rabbitmq_url()
    exchange: str = setting(ORDERS_EXCHANGE, "ORDERS_EXCHANGE")
    # Each projector's queue: <prefix>.<its read models>
    projection_queue_prefix: str = setting("customers", "PROJECTION_QUEUE_PREFIX")
    projection_batch_size: int = setting(500, "PROJECTION_BATCH_SIZE")
    partitions: int = shared.order_partitions()  # the projectors keep them all between them
    batch_interval: float = shared.batch_interval()
    projection_stall_after: float = setting(30.0, "PROJECTION_STALL_AFTER")
    projection_catch_up_interval: float = setting(2.0, "PROJECTION_CATCH_UP_INTERVAL")
    # How long a read asking for a position (X-Min-Position) waits for orders_count to reach it.
    min_position_deadline: float = setting(2.0, "MIN_POSITION_DEADLINE")
    api_token: str = setting("", "CUSTOMER_SERVICE_TOKEN", secret=True)
    metrics_host: str = shared.metrics_host()
    projector_metrics_port: int = setting(9105, "PROJECTOR_METRICS_PORT")  # 0: none

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        database = PostgresSettings.from_env(env, dbname_var="CUSTOMERS_DB", dbname="customers")
        return read(cls, env, postgres=database)
