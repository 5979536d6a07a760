"""`make bench-floor`: what RabbitMQ alone spends on one order's messages, with nothing else.

Any design that keeps DESIGN's messaging contract moves these messages for each order: an
`order.created` published with a confirm to a topic exchange and routed to two quorum
queues (a read model's and the payment service's), and a payment outcome published with a
confirm by the payment service's side and routed to a third quorum queue (the order
service's). Every delivery is acknowledged. This publishes FLOOR_ORDERS orders (default
20,000) that way as fast as one process can, in batches of each of FLOOR_BATCHES
(default 10,50,200), with the cheapest client code these libraries allow: publishes through
aio-pika's own aiormq channel without waiting for each flush, one multiple-ack per
consumer batch, no decoding, no database.

It reads from /proc the CPU of RabbitMQ (beam.smp) and of this client over each run and
prints both per order. RabbitMQ's figure is a floor under any implementation's broker cost
per order on this machine; the client's is what the thinnest Python code pays for the same
messages. Queues and exchanges are its own and deleted after each run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from bench import explain
from bench.procfs import cpu_seconds, pids_named
from bench.scenarios import bench_prefix
from servicekit.relay import Publisher
from servicekit.settings import DEFAULT_RABBITMQ_URL

BODY = b'{"type":"order.created","data":{' + b'"x":"' + b"." * 300 + b'"}}'  # an envelope's size
PROPERTIES = aiormq.spec.Basic.Properties(delivery_mode=2, content_type="application/json")
PREFETCH = 1000
GATHER = 0.005  # seconds a consumer waits after a first message for the rest of a burst


@dataclass(frozen=True)
class Floor:
    batch: int
    orders: int
    seconds: float
    rabbitmq_cpu: float
    client_cpu: float

    def line(self) -> str:
        per = 1000 / self.orders
        return (
            f"batches of {self.batch}: {self.orders / self.seconds:,.0f} orders/s;"
            f" RabbitMQ {self.rabbitmq_cpu * per:.3f} ms per order"
            f" ({self.rabbitmq_cpu / self.seconds:.2f} cores);"
            f" this client {self.client_cpu * per:.3f} ms per order"
        )


async def publish(channel: aiormq.Channel, exchange: str, key: str, n: int) -> None:
    """n messages, confirms pipelined; returns once the broker confirmed all of them."""
    confirms = await asyncio.gather(
        *(
            channel.basic_publish(
                BODY, exchange=exchange, routing_key=key, properties=PROPERTIES, wait=False
            )
            for _ in range(n)
        )
    )
    if not all(isinstance(c, aiormq.spec.Basic.Ack) for c in confirms):
        raise RuntimeError("the broker refused a publish")


class BatchConsumer:
    """Consumes a queue on a connection of its own, as a service's process does, in batches:
    after a first message, GATHER seconds for the rest, then `on_batch(n)` and one ack for
    all of them (a multiple ack covers the whole channel, so one consumer per channel)."""

    def __init__(self, url: str, queue: str, on_batch: Callable[[int], Awaitable[None]]):
        self.url = url
        self.queue = queue
        self.on_batch = on_batch
        self.arrived: list[AbstractIncomingMessage] = []
        self.wake = asyncio.Event()

    async def _arrive(self, message: AbstractIncomingMessage) -> None:
        self.arrived.append(message)
        self.wake.set()

    async def run(self) -> None:
        async with await aio_pika.connect(self.url) as connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(self.queue)
            await queue.consume(self._arrive)
            while True:
                await self.wake.wait()
                await asyncio.sleep(GATHER)
                self.wake.clear()
                taken, self.arrived = self.arrived, []
                await self.on_batch(len(taken))
                await taken[-1].ack(multiple=True)


async def measure(url: str, prefix: str, *, orders: int, batch: int) -> Floor:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(prefix, aio_pika.ExchangeType.TOPIC)
        queues: list[AbstractQueue] = []
        for name, key in (("count", "order.#"), ("payments", "order.created")):
            queues.append(await quorum_queue(channel, f"{prefix}.{name}", exchange, key))
        queues.append(await quorum_queue(channel, f"{prefix}.results", exchange, "payment.#"))
        publisher = (await Publisher.on(channel, exchange.name)).channel
        payments_channel = await connection.channel(publisher_confirms=True)
        payments_side = (await Publisher.on(payments_channel, exchange.name)).channel
        settled = {"counted": 0, "results": 0}
        everything = asyncio.Event()

        def tally(which: str) -> Callable[[int], Awaitable[None]]:
            async def add(n: int) -> None:
                settled[which] += n
                if min(settled.values()) >= orders:
                    everything.set()

            return add

        async def pay(n: int) -> None:  # the payment service's side: one outcome per order
            await publish(payments_side, exchange.name, "payment.succeeded", n)

        count, payments, results = queues
        consumers = [
            asyncio.create_task(BatchConsumer(url, count.name, tally("counted")).run()),
            asyncio.create_task(BatchConsumer(url, payments.name, pay).run()),
            asyncio.create_task(BatchConsumer(url, results.name, tally("results")).run()),
        ]
        broker, client = pids_named("beam.smp"), [os.getpid()]
        broker_before, client_before = cpu_seconds(broker), cpu_seconds(client)
        started = time.monotonic()
        for sent in range(0, orders, batch):
            await publish(publisher, exchange.name, "order.created", min(batch, orders - sent))
        await everything.wait()
        seconds = time.monotonic() - started
        floor = Floor(
            batch=batch,
            orders=orders,
            seconds=seconds,
            rabbitmq_cpu=cpu_seconds(broker) - broker_before,
            client_cpu=cpu_seconds(client) - client_before,
        )
        for consumer in consumers:
            consumer.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        for queue in queues:
            await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        return floor
    finally:
        await connection.close()


async def quorum_queue(
    channel: aio_pika.abc.AbstractChannel,
    name: str,
    exchange: aio_pika.abc.AbstractExchange,
    key: str,
) -> AbstractQueue:
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(exchange, key)
    return queue


async def floors(url: str, *, orders: int, batches: list[int]) -> list[Floor]:
    found = []
    for batch in batches:
        floor = await measure(url, f"{bench_prefix()}.floor{batch}", orders=orders, batch=batch)
        print(floor.line(), flush=True)
        found.append(floor)
    return found


def main(argv: list[str] | None = None) -> int:
    explain(__doc__, "python -m bench.floor", argv)
    orders = int(os.environ.get("FLOOR_ORDERS", "20000"))
    batches = [int(b) for b in os.environ.get("FLOOR_BATCHES", "10,50,200").split(",")]
    url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    print(f"{orders:,} orders, each: 2 confirmed publishes, 3 deliveries, quorum queues")
    asyncio.run(floors(url, orders=orders, batches=batches))
    return 0


if __name__ == "__main__":
    sys.exit(main())
