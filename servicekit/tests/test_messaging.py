"""The messaging runtime against a real RabbitMQ: batches coalesce, poison is set aside, a
batch is acknowledged once and only after it was handled."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from contracts.messaging import POISON_REASON_HEADER, dead_letter_names
from servicekit.messaging import Batching, Inbox, Message, Poison, Subscription, channel, consume
from servicekit.messaging import declare_consumer_queue as declare
from tests.broker import AMQP_URL, drain, publish_raw, queue_depth, unfinished
from tests.support import RUN_ID, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq_up")]


@pytest.fixture
async def subscription() -> AsyncIterator[Subscription]:
    name = f"t{RUN_ID}.messaging.{uuid.uuid4().hex[:6]}"
    declared = Subscription(
        amqp_url=AMQP_URL, exchange=f"{name}.x", queue=f"{name}.q", bindings=("order.#",)
    )
    async with channel(AMQP_URL) as opened:
        await declare(opened, declared.exchange, declared.queue, declared.bindings)
    yield declared
    async with channel(AMQP_URL) as opened:
        for queue in (declared.queue, dead_letter_names(declared.queue)[1]):
            await opened.queue_delete(queue)
        await opened.exchange_delete(dead_letter_names(declared.queue)[0])
        await opened.exchange_delete(declared.exchange)


async def publish(subscription: Subscription, *bodies: bytes) -> None:
    for body in bodies:
        await publish_raw(subscription.exchange, body, "order.created")


@pytest.fixture
async def inbox(subscription: Subscription) -> AsyncIterator[Inbox]:
    """Consuming the subscription's queue, on a channel of its own."""
    async with channel(AMQP_URL, prefetch=100) as opened:
        consuming = Inbox(opened)
        await consuming.consume(await opened.get_queue(subscription.queue))
        yield consuming


async def depth_is(subscription: Subscription, count: int) -> bool:
    return await queue_depth(subscription.queue) == count


async def test_a_batch_is_what_has_arrived_up_to_its_size(
    subscription: Subscription, inbox: Inbox
) -> None:
    await publish(subscription, *(b"%d" % n for n in range(7)))
    await eventually(lambda: inbox.waiting == 7, what="seven delivered")

    first = await inbox.batch(asyncio.Event(), Batching(size=5))
    second = await inbox.batch(asyncio.Event(), Batching(size=5))

    assert [m.body for m in first] == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.body for m in second] == [b"5", b"6"]
    await second[-1].ack(multiple=True)


async def test_after_a_quiet_spell_a_message_is_a_batch_at_once(
    subscription: Subscription, inbox: Inbox
) -> None:
    await publish(subscription, b"alone")
    started = time.monotonic()
    batch = await inbox.batch(asyncio.Event(), Batching(size=10, interval=30.0, idle=30.0))

    assert [m.body for m in batch] == [b"alone"]
    assert time.monotonic() - started < 10  # it went when it came, not after `interval`
    await batch[-1].ack(multiple=True)


async def test_messages_soon_after_a_batch_wait_for_the_interval_and_go_together(
    subscription: Subscription, inbox: Inbox
) -> None:
    stopping = asyncio.Event()
    batching = Batching(size=10, interval=3.0, idle=5.0)
    await publish(subscription, b"first")
    first = await inbox.batch(stopping, batching)
    handed_out = time.monotonic()

    await publish(subscription, b"second")
    await eventually(lambda: inbox.waiting == 1, what="the second delivered")
    publishing = asyncio.create_task(publish(subscription, b"third"))
    second = await inbox.batch(stopping, batching)
    await publishing

    assert [m.body for m in first] == [b"first"]
    assert [m.body for m in second] == [b"second", b"third"]
    assert time.monotonic() - handed_out >= 3.0  # it waited out the interval
    await second[-1].ack(multiple=True)


async def test_an_idle_inbox_gives_an_empty_batch_and_a_closed_channel_raises(
    inbox: Inbox,
) -> None:
    assert await inbox.batch(asyncio.Event(), Batching(idle=0.05)) == []
    await inbox.channel.close()
    with pytest.raises(ConnectionError):
        await inbox.batch(asyncio.Event(), Batching(idle=0.05))


async def test_a_session_acks_each_batch_once_handled_and_dead_letters_its_poison(
    subscription: Subscription,
) -> None:
    seen: list[list[bytes]] = []

    async def on_batch(batch: list[Message]) -> list[Poison]:
        seen.append([m.body for m in batch])
        return [Poison(m, "not an event") for m in batch if m.body == b"bad"]

    await publish(subscription, b"one", b"bad", b"two")
    stopping = asyncio.Event()
    session = asyncio.create_task(
        consume(subscription, Batching(size=10, interval=0.2, idle=0.1), stopping, on_batch)
    )
    await eventually(lambda: unfinished_is_zero(subscription), what="every message finished")
    stopping.set()
    await session

    assert sorted(body for batch in seen for body in batch) == [b"bad", b"one", b"two"]
    dead = await drain(dead_letter_names(subscription.queue)[1])
    assert [(m.body, (m.headers or {}).get(POISON_REASON_HEADER)) for m in dead] == [
        (b"bad", "not an event")
    ]


async def test_a_batch_whose_handling_fails_is_delivered_again(
    subscription: Subscription,
) -> None:
    attempts: list[list[bytes]] = []

    async def failing_once(batch: list[Message]) -> list[Poison]:
        attempts.append([m.body for m in batch])
        if len(attempts) == 1:
            raise RuntimeError("the database went away")
        return []

    await publish(subscription, b"a", b"b")
    await eventually(lambda: depth_is(subscription, 2), what="both queued")
    batching = Batching(size=10, idle=0.1)
    with pytest.raises(RuntimeError):
        await consume(subscription, batching, asyncio.Event(), failing_once)
    stopping = asyncio.Event()
    session = asyncio.create_task(consume(subscription, batching, stopping, failing_once))
    await eventually(lambda: len(attempts) >= 2, what="a second attempt")
    await eventually(lambda: unfinished_is_zero(subscription), what="the batch acknowledged")
    stopping.set()
    await session

    # A fresh session hands out what has arrived when its first message does: the broker
    # may space the deliveries, so a batch holds both or a first part of them.
    assert attempts[0] == [b"a", b"b"][: len(attempts[0])]
    assert [body for attempt in attempts[1:] for body in attempt] == [b"a", b"b"]


async def unfinished_is_zero(subscription: Subscription) -> bool:
    return await unfinished(subscription.queue) == 0
