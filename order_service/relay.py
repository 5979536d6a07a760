"""The order service's relay: its event log, published to the `orders` exchange."""

from __future__ import annotations

from contracts.partitions import FUNCTION_NAME
from order_service.application import MIGRATIONS, Orders
from order_service.recorders import SUMMARIES
from order_service.settings import Settings
from order_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog, PartitionKey
from servicekit.relay import RelaySettings
from servicekit.service import ServiceRelay

# An order's events go to its customer's partition (contracts.partitions): the customer id
# is read from the order's summary row, written in the same transaction as its events.
PARTITION_KEY = PartitionKey(
    table=SUMMARIES, stream_column="id", key_column="customer_id", function=FUNCTION_NAME
)
RELAY = ServiceRelay("orders", Orders, to_contract, PUBLIC_TOPICS, MIGRATIONS, PARTITION_KEY)


def event_log(orders: Orders) -> EventLog:
    return RELAY.event_log(orders)


def relay_settings(settings: Settings, orders: Orders) -> RelaySettings:
    return RELAY.settings(settings, orders)


async def run_relay(settings: Settings) -> None:
    """Relay until SIGINT or SIGTERM."""
    await RELAY.run(settings)
