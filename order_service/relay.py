"""The order service's relay: its event log, published to the `orders` exchange."""

from __future__ import annotations

from order_service.application import MIGRATIONS, Orders
from order_service.settings import Settings
from order_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog
from servicekit.relay import RelaySettings
from servicekit.service import ServiceRelay

RELAY = ServiceRelay("orders", Orders, to_contract, PUBLIC_TOPICS, MIGRATIONS)


def event_log(orders: Orders) -> EventLog:
    return RELAY.event_log(orders)


def relay_settings(settings: Settings, orders: Orders) -> RelaySettings:
    return RELAY.settings(settings, orders)


async def run_relay(settings: Settings) -> None:
    """Relay until SIGINT or SIGTERM."""
    await RELAY.run(settings)
