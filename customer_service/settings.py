"""The customer service's configuration, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from contracts.events import ORDERS_EXCHANGE
from servicekit.env import env_float, env_int, env_str
from servicekit.postgres import PostgresSettings
from servicekit.ratelimit import DEFAULT_RATE_LIMIT


@dataclass(frozen=True, kw_only=True)
class Settings:
    postgres: PostgresSettings
    host: str = "127.0.0.1"
    port: int = 3002
    rate_limit: float = DEFAULT_RATE_LIMIT  # requests per second per client; 0: off
    db_pool_size: int = 10
    order_service_url: str = "http://127.0.0.1:3001"  # its event feed heals gaps
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = ORDERS_EXCHANGE
    projection_queue_prefix: str = "customers"  # each projection's queue: <prefix>.<name>
    projection_batch_size: int = 500
    batch_interval: float = 0.02  # the shortest time between two batches of a projector
    projection_stall_after: float = 30.0
    projection_catch_up_interval: float = 2.0
    api_token: str = field(default="", repr=False)  # a secret: never printed

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            postgres=PostgresSettings.from_env(env, dbname_var="CUSTOMERS_DB", dbname="customers"),
            host=env_str(env, "CUSTOMER_API_HOST", "127.0.0.1"),
            port=env_int(env, "CUSTOMER_API_PORT", 3002),
            rate_limit=env_float(env, "API_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            db_pool_size=env_int(env, "CUSTOMER_DB_POOL_SIZE", 10),
            order_service_url=env_str(env, "ORDER_SERVICE_URL", "http://127.0.0.1:3001"),
            amqp_url=env_str(env, "RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            exchange=env_str(env, "ORDERS_EXCHANGE", ORDERS_EXCHANGE),
            projection_queue_prefix=env_str(env, "PROJECTION_QUEUE_PREFIX", "customers"),
            projection_batch_size=env_int(env, "PROJECTION_BATCH_SIZE", 500),
            batch_interval=env_float(env, "BATCH_INTERVAL", 0.02),
            projection_stall_after=env_float(env, "PROJECTION_STALL_AFTER", 30.0),
            projection_catch_up_interval=env_float(env, "PROJECTION_CATCH_UP_INTERVAL", 2.0),
            api_token=env_str(env, "CUSTOMER_SERVICE_TOKEN", ""),
        )
