"""The order service's consumer of payment outcomes: each recorded on its order exactly once."""

from __future__ import annotations

import asyncio
from functools import partial

from contracts.events import (
    PAYMENT_EVENTS_BINDING,
    Envelope,
    IntegrationEvent,
    PaymentFailedV1,
    PaymentOutcome,
)
from contracts.messaging import UnprocessableError
from order_service.application import OrderNotFoundError, Orders
from order_service.settings import Settings
from servicekit.consumer import ConsumerSettings, Handler, run_consumer_process


def handler(orders: Orders) -> Handler:
    async def record(envelope: Envelope[IntegrationEvent]) -> None:
        outcome = envelope.data
        if not isinstance(outcome, PaymentOutcome):
            return  # not a payment outcome: nothing for an order to record
        try:
            await asyncio.to_thread(
                orders.record_payment,
                outcome.order_id,
                payment_id=outcome.payment_id,
                succeeded=not isinstance(outcome, PaymentFailedV1),
                reason=outcome.reason if isinstance(outcome, PaymentFailedV1) else "",
                correlation_id=envelope.correlation_id,
            )
        except OrderNotFoundError:
            raise UnprocessableError(f"no order {outcome.order_id}") from None

    return record


def consumer_settings(settings: Settings) -> ConsumerSettings:
    return ConsumerSettings(
        name="payment-results",
        amqp_url=settings.amqp_url,
        exchange=settings.payments_exchange,
        queue=settings.payment_results_queue,
        bindings=(PAYMENT_EVENTS_BINDING,),
    )


async def run_payment_results(settings: Settings) -> None:
    """Record payment outcomes until SIGINT or SIGTERM."""
    make = partial(Orders, env=settings.eventsourcing_env(), group_commit=True)
    await run_consumer_process(make, settings.postgres, consumer_settings(settings), handler)
