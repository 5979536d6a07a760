"""The order service's configuration, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from contracts.events import ORDERS_EXCHANGE, PAYMENTS_EXCHANGE
from servicekit.env import SettingsError, env_float, env_int, env_str
from servicekit.postgres import PostgresSettings
from servicekit.ratelimit import DEFAULT_RATE_LIMIT


def commit_mode(value: str) -> str:
    if value not in ("group", "single"):
        raise SettingsError(f"ORDER_COMMIT_MODE must be group or single, not {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    postgres: PostgresSettings
    host: str = "127.0.0.1"
    port: int = 3001
    rate_limit: float = DEFAULT_RATE_LIMIT  # requests per second per client; 0: off
    customer_service_url: str = "http://127.0.0.1:3002"
    customer_connect_timeout: float = 0.5
    customer_read_timeout: float = 1.0
    breaker_threshold: int = 5
    breaker_reset_after: float = 5.0
    customer_cache_ttl: float = 0.5
    customer_service_token: str = field(default="", repr=False)  # a secret: never printed
    db_pool_size: int = 10
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = ORDERS_EXCHANGE
    relay_page_size: int = 500
    relay_interval: float = 0.03  # the shortest time between two reads of the relay
    batch_interval: float = 0.02  # the shortest time between two batches of a consumer
    payments_exchange: str = PAYMENTS_EXCHANGE
    commit_mode: str = "group"  # or "single": one transaction per save (the baseline)
    api_threads: int = 64  # calls into the synchronous application run in these
    payment_results_queue: str = "orders.payment-results"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            postgres=PostgresSettings.from_env(env, dbname_var="ORDERS_DB", dbname="orders"),
            host=env_str(env, "ORDER_API_HOST", "127.0.0.1"),
            port=env_int(env, "ORDER_API_PORT", 3001),
            rate_limit=env_float(env, "API_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            customer_service_url=env_str(env, "CUSTOMER_SERVICE_URL", "http://127.0.0.1:3002"),
            customer_connect_timeout=env_float(env, "CUSTOMER_CONNECT_TIMEOUT", 0.5),
            customer_read_timeout=env_float(env, "CUSTOMER_READ_TIMEOUT", 1.0),
            breaker_threshold=env_int(env, "CUSTOMER_BREAKER_THRESHOLD", 5),
            breaker_reset_after=env_float(env, "CUSTOMER_BREAKER_RESET_AFTER", 5.0),
            customer_cache_ttl=env_float(env, "CUSTOMER_CACHE_TTL", 0.5),
            customer_service_token=env_str(env, "CUSTOMER_SERVICE_TOKEN", ""),
            db_pool_size=env_int(env, "ORDER_DB_POOL_SIZE", 10),
            amqp_url=env_str(env, "RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            exchange=env_str(env, "ORDERS_EXCHANGE", ORDERS_EXCHANGE),
            relay_page_size=env_int(env, "RELAY_PAGE_SIZE", 500),
            relay_interval=env_float(env, "RELAY_INTERVAL", 0.03),
            batch_interval=env_float(env, "BATCH_INTERVAL", 0.02),
            payments_exchange=env_str(env, "PAYMENTS_EXCHANGE", PAYMENTS_EXCHANGE),
            commit_mode=commit_mode(env_str(env, "ORDER_COMMIT_MODE", "group")),
            api_threads=env_int(env, "ORDER_API_THREADS", 64),
            payment_results_queue=env_str(env, "PAYMENT_RESULTS_QUEUE", "orders.payment-results"),
        )

    def eventsourcing_env(self) -> dict[str, str]:
        return self.postgres.eventsourcing_env(self.db_pool_size)
