"""The payment service's configuration, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.events import ORDERS_EXCHANGE, PAYMENTS_EXCHANGE
from servicekit.env import env_float, env_int, env_str
from servicekit.postgres import PostgresSettings
from servicekit.ratelimit import DEFAULT_RATE_LIMIT


@dataclass(frozen=True, kw_only=True)
class Settings:
    postgres: PostgresSettings
    host: str = "127.0.0.1"
    port: int = 3003
    rate_limit: float = DEFAULT_RATE_LIMIT  # requests per second per client; 0: off
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    orders_exchange: str = ORDERS_EXCHANGE
    exchange: str = PAYMENTS_EXCHANGE  # where its relay publishes payment outcomes
    queue: str = "payments.order-created"
    relay_page_size: int = 500
    relay_interval: float = 0.03  # the shortest time between two reads of the relay
    batch_interval: float = 0.02  # the shortest time between two batches of a consumer
    db_pool_size: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            postgres=PostgresSettings.from_env(env, dbname_var="PAYMENTS_DB", dbname="payments"),
            host=env_str(env, "PAYMENT_API_HOST", "127.0.0.1"),
            port=env_int(env, "PAYMENT_API_PORT", 3003),
            rate_limit=env_float(env, "API_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            amqp_url=env_str(env, "RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            orders_exchange=env_str(env, "ORDERS_EXCHANGE", ORDERS_EXCHANGE),
            exchange=env_str(env, "PAYMENTS_EXCHANGE", PAYMENTS_EXCHANGE),
            queue=env_str(env, "PAYMENT_QUEUE", "payments.order-created"),
            relay_page_size=env_int(env, "RELAY_PAGE_SIZE", 500),
            relay_interval=env_float(env, "RELAY_INTERVAL", 0.03),
            batch_interval=env_float(env, "BATCH_INTERVAL", 0.02),
            db_pool_size=env_int(env, "PAYMENT_DB_POOL_SIZE", 5),
        )

    def eventsourcing_env(self) -> dict[str, str]:
        return self.postgres.eventsourcing_env(self.db_pool_size)
