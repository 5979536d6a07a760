"""The order service's relay process: its event log, published to the `orders` exchange."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from order_service.application import Orders
from order_service.settings import Settings
from order_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog
from servicekit.postgres import create_application
from servicekit.relay import Relay, RelaySettings
from servicekit.signals import stop_on_signals

RELAY_NAME = "orders"


def event_log(orders: Orders) -> EventLog:
    return EventLog(orders.recorder, orders.mapper, to_contract, PUBLIC_TOPICS)


def relay_settings(settings: Settings, orders: Orders) -> RelaySettings:
    return RelaySettings(
        name=RELAY_NAME,
        exchange=settings.exchange,
        amqp_url=settings.amqp_url,
        conninfo=settings.postgres.conninfo(),
        channel=orders.recorder.channel_name,  # type: ignore[attr-defined]
        page_size=settings.relay_page_size,
    )


async def run_relay(settings: Settings) -> None:
    """Relay until SIGINT or SIGTERM."""
    stopping = stop_on_signals()
    make = partial(Orders, env=settings.eventsourcing_env())
    orders = await asyncio.to_thread(create_application, make, settings.postgres)
    relay = Relay(event_log(orders), relay_settings(settings, orders))
    try:
        await relay.run(stopping)
    finally:
        orders.close()
    logging.getLogger(__name__).info("relay stopped after publishing %d", relay.published)
