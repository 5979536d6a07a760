"""The baseline's exchanges, queues and bindings as data (benchmark fixture).

Each consumer owns a durable quorum queue with a dead-letter exchange `<queue>.dlx` and
queue `<queue>.dlq`, the queue type the project's consumers use, so RabbitMQ does the same
work for both systems.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from bench.baseline.settings import Settings
from bench.baseline.wire import ORDER_CREATED


@dataclass(frozen=True)
class QueueSpec:
    role: str  # the process that consumes it
    name: str
    exchange: str
    binding: str


def queues(settings: Settings) -> tuple[QueueSpec, ...]:
    p = settings.prefix
    return (
        QueueSpec(
            "orders-count", f"{p}.customers.orders-count", settings.orders_exchange, ORDER_CREATED
        ),
        QueueSpec(
            "payments", f"{p}.payments.order-created", settings.orders_exchange, ORDER_CREATED
        ),
        QueueSpec(
            "payment-results",
            f"{p}.orders.payment-results",
            settings.payments_exchange,
            "payment.#",
        ),
    )


def queue_for(settings: Settings, role: str) -> QueueSpec:
    return next(spec for spec in queues(settings) if spec.role == role)


async def declare_exchange(channel: AbstractChannel, name: str) -> aio_pika.abc.AbstractExchange:
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_queue(channel: AbstractChannel, spec: QueueSpec) -> AbstractQueue:
    """The queue, bound, with its dead-letter exchange and queue (idempotent)."""
    dead_letters = await channel.declare_exchange(
        f"{spec.name}.dlx", aio_pika.ExchangeType.FANOUT, durable=True
    )
    dlq = await channel.declare_queue(
        f"{spec.name}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dead_letters)
    exchange = await declare_exchange(channel, spec.exchange)
    queue = await channel.declare_queue(
        spec.name,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": dead_letters.name},
    )
    await queue.bind(exchange, spec.binding)
    return queue


async def declare_exchanges(settings: Settings) -> None:
    """The exchanges; each consumer declares its own queue, so a stack without the payment
    flow has no payments queue filling up."""
    async with await aio_pika.connect(settings.amqp_url) as connection:
        channel = await connection.channel()
        for name in (settings.orders_exchange, settings.payments_exchange):
            await declare_exchange(channel, name)


async def delete_all(settings: Settings) -> None:
    async with await aio_pika.connect(settings.amqp_url) as connection:
        channel = await connection.channel()
        for spec in queues(settings):
            for name in (spec.name, f"{spec.name}.dlq"):
                await channel.queue_delete(name)
            await channel.exchange_delete(f"{spec.name}.dlx")
        for name in (settings.orders_exchange, settings.payments_exchange):
            await channel.exchange_delete(name)
