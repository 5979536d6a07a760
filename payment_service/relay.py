"""The payment service's relay: its outcomes, published to the `payments` exchange."""

from __future__ import annotations

import asyncio
from functools import partial

from payment_service.application import Payments
from payment_service.settings import Settings
from payment_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog
from servicekit.postgres import create_application
from servicekit.relay import Relay, RelaySettings
from servicekit.signals import stop_on_signals

RELAY_NAME = "payments"


def event_log(payments: Payments) -> EventLog:
    return EventLog(payments.recorder, payments.mapper, to_contract, PUBLIC_TOPICS)


def relay_settings(settings: Settings, payments: Payments) -> RelaySettings:
    return RelaySettings(
        name=RELAY_NAME,
        exchange=settings.exchange,
        amqp_url=settings.amqp_url,
        conninfo=settings.postgres.conninfo(),
        channel=payments.recorder.channel_name,  # type: ignore[attr-defined]
        page_size=settings.relay_page_size,
    )


async def run_relay(settings: Settings) -> None:
    """Relay until SIGINT or SIGTERM."""
    stopping = stop_on_signals()
    make = partial(Payments, env=settings.eventsourcing_env())
    payments = await asyncio.to_thread(create_application, make, settings.postgres)
    try:
        await Relay(event_log(payments), relay_settings(settings, payments)).run(stopping)
    finally:
        payments.close()
