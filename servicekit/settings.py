"""The settings every service reads alike: one variable, one default, written here once.

Each function is a field for a service's settings dataclass (servicekit.env.setting).
"""

from __future__ import annotations

from contracts.partitions import PartitionError, partition_count
from servicekit.env import SettingsError, setting

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
RELAY_PAGE_SIZE = 500
RELAY_INTERVAL = 0.03  # seconds: the shortest time between two reads of a relay
DEFAULT_RATE_LIMIT = 1000.0  # per client: more than one client needs here, less than all
BATCH_INTERVAL = 0.02  # seconds: the shortest time between two batches of a consumer


def rate_limit() -> float:
    """Requests per second per client; 0: off."""
    return setting(DEFAULT_RATE_LIMIT, "API_RATE_LIMIT")


def rabbitmq_url() -> str:
    return setting(DEFAULT_RABBITMQ_URL, "RABBITMQ_URL")


def relay_page_size() -> int:
    return setting(RELAY_PAGE_SIZE, "RELAY_PAGE_SIZE")


def relay_interval() -> float:
    return setting(RELAY_INTERVAL, "RELAY_INTERVAL")


def batch_interval() -> float:
    return setting(BATCH_INTERVAL, "BATCH_INTERVAL")


def metrics_host() -> str:
    """Where the relays, consumers and projectors serve their metrics."""
    return setting("127.0.0.1", "METRICS_HOST")


def _partitions(raw: str) -> int:
    try:
        return partition_count(raw)
    except PartitionError as exc:
        raise SettingsError(f"ORDER_PARTITIONS must be {exc}") from None


def order_partitions() -> int:
    """How many partitions the order log is published in (contracts.partitions): the order
    relay, every partitioned projector and both APIs must agree; 1 is unpartitioned."""
    return setting(1, "ORDER_PARTITIONS", parse=_partitions)
