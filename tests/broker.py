"""RabbitMQ for tests: this run's exchanges and queues, what arrived, and rabbitmqctl."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika

from contracts.messaging import dead_letter_names
from tests.support import RUN_ID

AMQP_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class Delivery:
    body: bytes
    message_id: str | None
    type: str | None
    content_type: str | None
    correlation_id: str | None
    persistent: bool
    position: int
    partition: str | None = None  # the header of a partitioned message


@dataclass
class Topology:
    """An exchange and a queue bound to it (`order.#`), named uniquely for this test run."""

    exchange: str
    queue: str

    @classmethod
    async def declare(cls, purpose: str, *, bound: bool = True) -> Topology:
        """The exchange, and unless `bound` is False, the queue bound to it."""
        name = f"t{RUN_ID}.{purpose}.{uuid.uuid4().hex[:6]}"
        topology = cls(exchange=f"{name}.orders", queue=f"{name}.q")
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.declare_exchange(
                topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
        if bound:
            await topology.bind()
        return topology

    @classmethod
    async def declare_on(cls, exchange: str, queue: str) -> Topology:
        """A queue of the test's own, bound to an exchange someone else declares."""
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        topology = cls(exchange=exchange, queue=queue)
        await topology.bind()
        return topology

    async def bind(self) -> None:
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(self.exchange, "order.#")

    async def delete(self) -> None:
        await self.delete_queues()
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.exchange_delete(self.exchange)

    async def delete_queues(self) -> None:
        """The queue, and a dead-letter exchange and queue a projector may have declared."""
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            dlx, dlq = dead_letter_names(self.queue)
            await channel.queue_delete(self.queue)
            await channel.queue_delete(dlq)
            await channel.exchange_delete(dlx)

    async def collect(
        self, until: Callable[[list[Delivery]], bool], within: float = 30.0
    ) -> list[Delivery]:
        """Consume (and ack) messages until `until(received)` holds; fail after `within` s."""
        received: list[Delivery] = []
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=500)
            queue = await channel.get_queue(self.queue)
            async with asyncio.timeout(within), queue.iterator() as messages:
                if until(received):
                    return received
                async for message in messages:
                    await message.ack()
                    received.append(delivery(message))
                    if until(received):
                        break
        return received


def delivery(message: aio_pika.abc.AbstractIncomingMessage) -> Delivery:
    return Delivery(
        body=message.body,
        message_id=message.message_id,
        type=message.type,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        persistent=message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
        position=int(message.headers["position"]),  # type: ignore[arg-type]
        partition=message.headers.get("partition"),  # type: ignore[arg-type]
    )


def positions(deliveries: list[Delivery]) -> list[int]:
    return [d.position for d in deliveries]


async def rabbitmqctl(*args: str) -> None:
    """Drive the local broker (fault tests stop and start it, and always start it again)."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {errors.decode()}")


async def rabbitmqctl_rows(*args: str) -> list[list[str]]:
    """The rows of a `rabbitmqctl list_...` command (no headers), each split into its columns."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "--quiet",
        *args,
        "--no-table-headers",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    rows, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {errors.decode()}")
    return [line.split("\t") for line in rows.decode().splitlines() if line]


async def publish_raw(
    exchange: str, body: bytes, routing_key: str, headers: dict[str, int | str] | None = None
) -> None:
    """Put a message on an exchange as anyone could: copies, garbage, strangers' events."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        message = aio_pika.Message(
            body, headers=dict(headers or {}), content_type="application/json"
        )
        await target.publish(message, routing_key=routing_key)


async def drain(queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message waiting in a queue (acknowledged), without waiting for new ones."""
    taken = []
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        while (message := await source.get(fail=False)) is not None:
            await message.ack()
            taken.append(message)
    return taken


async def queue_exists(name: str) -> bool:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
    return True


async def queue_depth(name: str) -> int:
    """Messages ready in a queue (not counting those delivered and not yet acknowledged)."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count or 0


async def unfinished(queue: str) -> int:
    """Messages in a queue that its consumers have not finished: those waiting, plus those
    delivered and not yet acknowledged, as the broker counts them now.

    Our consumers acknowledge a message only after its handler returned (servicekit.consumer),
    however many handlers run at once; so while they keep running, 0 here means every message
    that reached the queue before (publish_raw returns once the broker confirmed it) has been
    handled. The waiting ones come from a passive declare, exact; the delivered ones from the
    channels consuming the queue (`rabbitmqctl list_consumers`, `list_channels`), exact too,
    and read after the waiting ones, so a message delivered in between is still counted. Not
    from `rabbitmqctl list_queues`: for a quorum queue (every consumer queue of ours) its
    counts are a sample refreshed every few seconds, and show 0 for messages just published.
    """
    waiting = await queue_depth(queue)
    consumers, channels = await asyncio.gather(
        rabbitmqctl_rows("list_consumers", "queue_name", "channel_pid"),
        rabbitmqctl_rows("list_channels", "pid", "messages_unacknowledged"),
    )
    consuming = {channel for name, channel in consumers if name == queue}
    return waiting + sum(int(count) for channel, count in channels if channel in consuming)
