"""The floor under any design in these libraries (benchmark fixture, not the product).

What an order costs in CPU when nothing is done but the messaging and the HTTP request every
design here needs, through the same libraries both systems use: aio-pika publishing with
confirms to a quorum queue, aio-pika consuming with one acknowledgement per batch, and a
Litestar handler on granian that decodes the order and answers, driven by the benchmark's
own load generator. No database, no event store, no logic.

Every order of either system is two publishes (the order created, the payment outcome),
three deliveries (to the payment processor, the read model, the order's payment result)
and one POST. The floor of an order is that sum; the cores over it is the most orders per
second any design on these libraries reaches on this machine.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import aio_pika
import msgspec
from litestar import Litestar, post

from bench import scenarios
from bench.load import closed_loop
from tests.broker import AMQP_URL
from tests.support import ROOT, eventually, free_port

WINDOW = 500  # publishes in flight and deliveries per acknowledgement: the cheapest batching
PUBLISHES, DELIVERIES, REQUESTS = 2, 3, 1  # per order, in both systems


class _OrderBody(msgspec.Struct):
    customer_id: int
    product_name: str
    quantity: int
    price: str


@post("/api/v1/orders", status_code=201)
async def _create(data: _OrderBody) -> dict[str, Any]:
    return {"customer_id": data.customer_id, "product_name": data.product_name}


def app() -> Litestar:
    """The least an order endpoint can do: decode the body, answer 201."""
    return Litestar([_create])


def _rabbitmq() -> float:
    return scenarios.cpu_seconds(scenarios._pids_named("beam.smp"))


async def messaging(prefix: str, messages: int) -> dict[str, float]:
    """CPU seconds per message: publishing (ours, RabbitMQ's), then delivering (the same)."""
    body = scenarios._synthetic(1)[0]
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            f"{prefix}.floor", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            f"{prefix}.floor", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, "order.#")
        ours, broker = time.process_time(), _rabbitmq()
        for start in range(0, messages, WINDOW):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=str(i),
                            type="order.created",
                            headers={"schema_version": 1, "position": i},
                        ),
                        routing_key="order.created",
                        mandatory=True,
                    )
                    for i in range(start, min(start + WINDOW, messages))
                )
            )
        figures = {
            "publish_ours": (time.process_time() - ours) / messages,
            "publish_broker": (_rabbitmq() - broker) / messages,
        }
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=1000)
        taken = 0
        done = asyncio.Event()

        async def deliver(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal taken
            taken += 1
            if taken % WINDOW == 0 or taken == messages:
                await message.ack(multiple=True)
            if taken == messages:
                done.set()

        ours, broker = time.process_time(), _rabbitmq()
        subscribed = await consumer.get_queue(queue.name)
        tag = await subscribed.consume(deliver)
        await done.wait()
        figures["deliver_ours"] = (time.process_time() - ours) / messages
        figures["deliver_broker"] = (_rabbitmq() - broker) / messages
        await subscribed.cancel(tag)
        await channel.queue_delete(queue.name)
        await channel.exchange_delete(exchange.name)
    return figures


def _serve(port: int) -> subprocess.Popen[bytes]:
    """The least handler on granian, as the services are served, in a session of its own."""
    code = (
        "from servicekit.serve import serve;"
        f" serve('bench.floor:app', host='127.0.0.1', port={port})"
    )
    argv = [sys.executable, "-c", code]  # our own interpreter and module, no outside input
    return subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True)  # noqa: S603


async def http(seconds: float) -> dict[str, float]:
    """CPU seconds per request of the least handler (server) and of the load generator."""
    port = free_port()
    server = _serve(port)
    url = f"http://127.0.0.1:{port}/api/v1/orders"
    try:
        await eventually(lambda: _listening(port), within=30, what="the floor's HTTP server")
        family = scenarios._family(server.pid)
        served, ours = scenarios.cpu_seconds(family), time.process_time()
        result = await closed_loop(url, scenarios._order, workers=64, seconds=seconds)
        requests = max(1, result.sent)
        return {
            "request_server": (scenarios.cpu_seconds(family) - served) / requests,
            "request_client": (time.process_time() - ours) / requests,
            "requests_per_s": result.sent / result.seconds,
        }
    finally:
        server.terminate()
        server.wait(timeout=15)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def floor(prefix: str, *, messages: int = 20_000, seconds: float = 5) -> dict[str, float]:
    figures = {**await messaging(prefix, messages), **await http(seconds)}
    per_order = (
        PUBLISHES * (figures["publish_ours"] + figures["publish_broker"])
        + DELIVERIES * (figures["deliver_ours"] + figures["deliver_broker"])
        + REQUESTS * (figures["request_server"] + figures["request_client"])
    )
    cores = os.cpu_count() or 1
    figures["per_order"] = per_order
    figures["most_per_s"] = cores / per_order
    # The load generator shares the cores; a design is not charged for it here.
    figures["most_per_s_without_client"] = cores / (per_order - figures["request_client"])
    return figures
