"""The payment service's relay: its outcomes, published to the `payments` exchange."""

from __future__ import annotations

from payment_service.application import MIGRATIONS, Payments
from payment_service.settings import Settings
from payment_service.translation import PUBLIC_TOPICS, to_contract
from servicekit.eventlog import EventLog
from servicekit.service import ServiceRelay

RELAY = ServiceRelay("payments", Payments, to_contract, PUBLIC_TOPICS, MIGRATIONS)


def event_log(payments: Payments) -> EventLog:
    return RELAY.event_log(payments)


async def run_relay(settings: Settings) -> None:
    """Relay until SIGINT or SIGTERM."""
    await RELAY.run(settings)
