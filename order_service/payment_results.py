"""The order service's consumer of payment outcomes: each recorded on its order exactly once."""

from __future__ import annotations

from functools import partial

from contracts.events import (
    PAYMENT_EVENTS_BINDING,
    Envelope,
    IntegrationEvent,
    PaymentFailedV1,
    PaymentOutcome,
)
from order_service.application import MIGRATIONS, Orders
from order_service.settings import Settings
from order_service.usecases import PaymentResult
from servicekit.consumer import ConsumerSettings, Handler, run_consumer_process
from servicekit.metrics import Endpoint
from servicekit.service import consumer_settings as subscribed


def result(envelope: Envelope[IntegrationEvent]) -> PaymentResult | None:
    """The payment result an event reports; None for any other event."""
    outcome = envelope.data
    if isinstance(outcome, PaymentFailedV1):
        succeeded, reason = False, outcome.reason
    elif isinstance(outcome, PaymentOutcome):
        succeeded, reason = True, ""
    else:
        return None
    return PaymentResult(
        order_id=outcome.order_id,
        payment_id=outcome.payment_id,
        succeeded=succeeded,
        reason=reason,
        correlation_id=envelope.correlation_id,
        traceparent=envelope.traceparent,
    )


def handler(orders: Orders) -> Handler:
    async def record(batch: list[Envelope[IntegrationEvent]]) -> list[str | None]:
        results = [result(envelope) for envelope in batch]
        taken = [r for r in results if r is not None]
        verdicts = iter(await orders.record_payments(taken) if taken else [])
        return [None if r is None else next(verdicts) for r in results]

    return record


def consumer_settings(settings: Settings) -> ConsumerSettings:
    return subscribed(
        "payment-results",
        settings,
        exchange=settings.payments_exchange,
        queue=settings.payment_results_queue,
        bindings=(PAYMENT_EVENTS_BINDING,),
    )


async def run_payment_results(settings: Settings) -> None:
    """Record payment outcomes until SIGINT or SIGTERM."""
    make = partial(Orders, env=settings.eventsourcing_env())
    await run_consumer_process(
        make,
        settings.postgres,
        MIGRATIONS,
        consumer_settings(settings),
        handler,
        Endpoint(settings.metrics_host, settings.payment_results_metrics_port),
    )
