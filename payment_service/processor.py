"""The payment processor: every created order gets its payment decided, once."""

from __future__ import annotations

from functools import partial

from contracts.events import Envelope, IntegrationEvent, OrderCreatedV1
from payment_service.application import MIGRATIONS, PaymentRequest, Payments
from payment_service.settings import Settings
from servicekit.consumer import ConsumerSettings, Handler, run_consumer_process
from servicekit.metrics import Endpoint
from servicekit.service import consumer_settings as subscribed


def handler(payments: Payments) -> Handler:
    async def pay(batch: list[Envelope[IntegrationEvent]]) -> list[str | None]:
        requests = [
            PaymentRequest(
                order_id=envelope.data.order_id,
                amount=envelope.data.amount_due(),
                currency=envelope.data.currency,
                correlation_id=envelope.correlation_id,
                traceparent=envelope.traceparent,
            )
            for envelope in batch
            if isinstance(envelope.data, OrderCreatedV1)
        ]
        if requests:
            await payments.pay_all(requests)
        return [None] * len(batch)

    return pay


def consumer_settings(settings: Settings) -> ConsumerSettings:
    return subscribed(
        "payments",
        settings,
        exchange=settings.orders_exchange,
        queue=settings.queue,
        bindings=(OrderCreatedV1.TYPE,),
    )


async def run_processor(settings: Settings) -> None:
    """Decide payments until SIGINT or SIGTERM."""
    make = partial(Payments, env=settings.eventsourcing_env())
    await run_consumer_process(
        make,
        settings.postgres,
        MIGRATIONS,
        consumer_settings(settings),
        handler,
        Endpoint(settings.metrics_host, settings.processor_metrics_port),
    )
