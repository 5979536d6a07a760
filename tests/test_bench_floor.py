"""`make bench-floor` on a few orders: every message of every order goes its whole way, and
the run leaves nothing behind on the broker."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from bench.floor import measure
from tests.broker import AMQP_URL
from tests.support import RUN_ID


@pytest.mark.usefixtures("rabbitmq_up")
async def test_every_order_is_counted_and_paid_and_the_queues_go_away() -> None:
    prefix = f"test{RUN_ID}.floor"

    # It returns only once every order was counted and its outcome arrived.
    floor = await asyncio.wait_for(measure(AMQP_URL, prefix, orders=250, batch=40), 60)

    assert floor.orders == 250
    assert floor.seconds > 0
    assert floor.rabbitmq_cpu > 0  # read from the broker's own process
    async with await aio_pika.connect(AMQP_URL) as connection:
        for name in ("count", "payments", "results"):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(f"{prefix}.{name}", passive=True)
