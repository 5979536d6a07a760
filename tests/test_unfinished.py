"""tests.support.unfinished on a queue declared as our consumers declare theirs (quorum): the
count the end-to-end tests wait on to know that messages they published were handled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from servicekit.messaging import declare_consumer_queue
from tests.broker import AMQP_URL, Topology, publish_raw, unfinished
from tests.support import RUN_ID, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def topology(rabbitmq_up: None) -> AsyncIterator[Topology]:
    declared = await Topology.declare("unfinished", bound=False)
    declared.queue = f"t{RUN_ID}.unfinished.consumer"
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        await declare_consumer_queue(channel, declared.exchange, declared.queue, ("order.#",))
    yield declared
    await declared.delete()


async def test_a_message_is_unfinished_until_its_consumer_acknowledges_it(
    topology: Topology,
) -> None:
    for n in range(3):
        await publish_raw(topology.exchange, b"{}", f"order.{n}")
    waiting = await unfinished(topology.queue)

    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        queue = await channel.get_queue(topology.queue)
        inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(inbox.put)
        delivered = [await asyncio.wait_for(inbox.get(), timeout=10) for _ in range(3)]
        held = await unfinished(topology.queue)  # in the consumer's hands, not acknowledged

        for message in delivered[:2]:
            await message.ack()
        await eventually(lambda: one_left(topology.queue), what="two acknowledged")
        await delivered[2].ack()
        await eventually(lambda: none_left(topology.queue), what="all three acknowledged")

    assert (waiting, held) == (3, 3)


async def one_left(queue: str) -> bool:
    return await unfinished(queue) == 1


async def none_left(queue: str) -> bool:
    return await unfinished(queue) == 0
