"""The payment service's relay: its outcomes, published to the `payments` exchange."""

from __future__ import annotations

from functools import partial

from payment_service.application import Payments
from payment_service.settings import Settings
from payment_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog
from servicekit.relay import Relay, RelaySettings, run_relay_process

RELAY_NAME = "payments"


def event_log(payments: Payments) -> EventLog:
    return EventLog(payments.recorder, payments.mapper, to_contract, PUBLIC_TOPICS)


def relay_for(settings: Settings, payments: Payments) -> Relay:
    relaying = RelaySettings(
        name=RELAY_NAME,
        exchange=settings.exchange,
        amqp_url=settings.amqp_url,
        conninfo=settings.postgres.conninfo(),
        channel=payments.recorder.channel_name,  # type: ignore[attr-defined]
        page_size=settings.relay_page_size,
        interval=settings.relay_interval,
    )
    return Relay(event_log(payments), relaying)


async def run_relay(settings: Settings) -> None:
    """Relay until SIGINT or SIGTERM."""
    make = partial(Payments, env=settings.eventsourcing_env())
    await run_relay_process(make, settings.postgres, partial(relay_for, settings))
