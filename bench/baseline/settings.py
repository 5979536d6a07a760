"""One frozen Settings per baseline process (benchmark fixture), read from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg

WAKE_MODES = ("listen", "poll")
LOOKUP_MODES = ("db", "http")


class SettingsError(ValueError):
    """An environment variable holds a value the baseline cannot use."""


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default)
    if value != int(value) or value < 0:
        raise SettingsError(f"{name} must be a whole number, not {value!r}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every name (databases, exchanges, queues) derives from `prefix`, so stacks never meet."""

    prefix: str = "baseline"
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str = field(default="", repr=False)
    amqp_url: str = field(default="amqp://guest:guest@127.0.0.1:5672/", repr=False)
    host: str = "127.0.0.1"
    orders_port: int = 4001
    customers_port: int = 4002
    customer_lookup: str = "db"  # db: the customers table; http: the customer API
    customer_cache_ttl: float = 0.5  # as the project's order service (CUSTOMER_CACHE_TTL)
    outbox_wake: str = "poll"  # poll: every interval (measured faster); listen: NOTIFY
    outbox_poll_interval: float = 0.05
    outbox_batch: int = 500
    consumer_prefetch: int = 1000
    consumer_batch: int = 500
    api_pool_size: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            prefix=env.get("BASELINE_PREFIX", "").strip() or "baseline",
            pg_host=env.get("POSTGRES_HOST", "").strip() or "127.0.0.1",
            pg_port=_whole(env, "POSTGRES_PORT", 5432),
            pg_user=env.get("POSTGRES_USER", "").strip() or "postgres",
            pg_password=env.get("POSTGRES_PASSWORD", ""),
            amqp_url=env.get("RABBITMQ_URL", "").strip() or "amqp://guest:guest@127.0.0.1:5672/",
            host=env.get("BASELINE_HOST", "").strip() or "127.0.0.1",
            orders_port=_whole(env, "BASELINE_ORDERS_PORT", 4001),
            customers_port=_whole(env, "BASELINE_CUSTOMERS_PORT", 4002),
            customer_lookup=_choice(env, "BASELINE_CUSTOMER_LOOKUP", "db", LOOKUP_MODES),
            customer_cache_ttl=_number(env, "BASELINE_CUSTOMER_CACHE_TTL", 0.5),
            outbox_wake=_choice(env, "BASELINE_OUTBOX_WAKE", "poll", WAKE_MODES),
            outbox_poll_interval=_number(env, "BASELINE_OUTBOX_POLL_INTERVAL", 0.05),
            outbox_batch=_whole(env, "BASELINE_OUTBOX_BATCH", 500),
            consumer_prefetch=_whole(env, "BASELINE_CONSUMER_PREFETCH", 1000),
            consumer_batch=_whole(env, "BASELINE_CONSUMER_BATCH", 500),
            api_pool_size=_whole(env, "BASELINE_API_POOL_SIZE", 10),
        )

    # Names of everything this stack owns.

    def dbname(self, service: str) -> str:
        """`orders`, `customers` or `payments`: each service has a database of its own."""
        return f"{re.sub(r'[^a-z0-9]+', '_', self.prefix.lower())}_{service}"

    @property
    def notify(self) -> bool:
        """Whether writers to an outbox wake its publisher (NOTIFY after their commit)."""
        return self.outbox_wake == "listen"

    @property
    def orders_exchange(self) -> str:
        return f"{self.prefix}.orders"

    @property
    def payments_exchange(self) -> str:
        return f"{self.prefix}.payments"

    @property
    def customers_url(self) -> str:
        return f"http://{self.host}:{self.customers_port}"

    def conninfo(self, service: str, role: str = "", *, dbname: str | None = None) -> str:
        """Connection string for a service's database; `role` names the connection in
        pg_stat_activity (the stack waits for it to know that a worker is up)."""
        return psycopg.conninfo.make_conninfo(
            host=self.pg_host,
            port=self.pg_port,
            user=self.pg_user,
            password=self.pg_password or None,
            dbname=dbname or self.dbname(service),
            connect_timeout=5,
            application_name=self.application_name(role or service),
        )

    def application_name(self, role: str) -> str:
        return f"{self.prefix}:{role}"[:63]

    def __repr__(self) -> str:  # never print the passwords
        return f"Settings(prefix={self.prefix!r}, postgres={self.pg_host}:{self.pg_port})"
