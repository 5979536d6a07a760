"""The order service's relay process: its event log, published to the `orders` exchange."""

from __future__ import annotations

import asyncio
import logging
import signal

from order_service.application import Orders
from order_service.settings import Settings
from order_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog
from servicekit.postgres import ensure_database
from servicekit.relay import Relay, RelaySettings

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
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await asyncio.to_thread(ensure_database, settings.postgres)
    orders = await asyncio.to_thread(Orders, env=settings.eventsourcing_env())
    try:
        relay = Relay(event_log(orders), relay_settings(settings, orders))
        await relay.run(stopping)
    finally:
        orders.close()
    logging.getLogger(__name__).info("relay stopped after publishing %d", relay.published)
