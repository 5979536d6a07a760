"""The order service's relay process: its event log, published to the `orders` exchange."""

from __future__ import annotations

from functools import partial

from order_service.application import Orders
from order_service.settings import Settings
from order_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog
from servicekit.relay import Relay, RelaySettings, run_relay_process

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
        interval=settings.relay_interval,
    )


def relay_for(settings: Settings, orders: Orders) -> Relay:
    return Relay(event_log(orders), relay_settings(settings, orders))


async def run_relay(settings: Settings) -> None:
    """Relay until SIGINT or SIGTERM."""
    make = partial(Orders, env=settings.eventsourcing_env())
    await run_relay_process(make, settings.postgres, partial(relay_for, settings))
