"""The customer service's configuration, read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from servicekit.env import env_int, env_str
from servicekit.postgres import PostgresSettings


@dataclass(frozen=True, kw_only=True)
class Settings:
    postgres: PostgresSettings
    host: str = "127.0.0.1"
    port: int = 3002
    db_pool_size: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            postgres=PostgresSettings.from_env(env, dbname_var="CUSTOMERS_DB", dbname="customers"),
            host=env_str(env, "CUSTOMER_API_HOST", "127.0.0.1"),
            port=env_int(env, "CUSTOMER_API_PORT", 3002),
            db_pool_size=env_int(env, "CUSTOMER_DB_POOL_SIZE", 10),
        )
