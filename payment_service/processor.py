"""The payment processor: every created order gets its payment decided, once."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from contracts.events import Envelope, IntegrationEvent, OrderCreatedV1
from payment_service.application import Payments
from payment_service.settings import Settings
from servicekit.consumer import CONSUMER_THREADS, Consumer, ConsumerSettings, Handler
from servicekit.postgres import create_application
from servicekit.signals import stop_on_signals

CENT = 2


def handler(payments: Payments) -> Handler:
    async def pay(envelope: Envelope[IntegrationEvent]) -> None:
        order = envelope.data
        if not isinstance(order, OrderCreatedV1):
            return
        await asyncio.to_thread(
            payments.pay,
            order_id=order.order_id,
            amount=round(order.price * order.quantity, CENT),
            currency=order.currency,
            correlation_id=envelope.correlation_id,
        )

    return pay


def consumer_settings(settings: Settings) -> ConsumerSettings:
    return ConsumerSettings(
        name="payments",
        amqp_url=settings.amqp_url,
        exchange=settings.orders_exchange,
        queue=settings.queue,
        bindings=(OrderCreatedV1.TYPE,),
    )


async def run_processor(settings: Settings) -> None:
    """Decide payments until SIGINT or SIGTERM."""
    stopping = stop_on_signals()
    # Handled concurrently, in threads, committed together.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(CONSUMER_THREADS))
    make = partial(Payments, env=settings.eventsourcing_env(), group_commit=True)
    payments = await asyncio.to_thread(create_application, make, settings.postgres)
    try:
        await Consumer(consumer_settings(settings), handler(payments)).run(stopping)
    finally:
        payments.close()
