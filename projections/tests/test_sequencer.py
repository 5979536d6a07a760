"""Exactly once from at-least-once: the sequencer under duplicates, losses and crashes."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.codec import envelope
from contracts.events import OrderCreatedV1
from projections.sequencer import Event, FeedGapError, Hole, sequence


def stream(length: int, first: int = 1, step: int = 1) -> list[Event]:
    """The order service's log: positions with gaps of `step`, customers 1..3."""
    events: list[Event] = []
    previous = None
    for n in range(length):
        position = first + n * step
        data = OrderCreatedV1(
            order_id=uuid.uuid4(),
            customer_id=1 + n % 3,
            product_name="p",
            quantity=1,
            price=Decimal(1),
            status="pending",
        )
        events.append(
            envelope(
                data,
                id=uuid.uuid4(),
                position=position,
                previous_position=previous,
                occurred_at=datetime.now(UTC),
                correlation_id="",
            )
        )
        previous = position
    return events


class Feed:
    """The feed's semantics over a list (what GET /api/v1/events serves)."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.calls = 0

    async def fetch(self, after: int, upto: int) -> list[Event]:
        self.calls += 1
        return [e for e in self.events if after < e.position <= upto]


async def test_a_chained_message_is_applied_without_asking_the_feed() -> None:
    events = stream(3)
    feed = Feed(events)

    outcome = await sequence(0, events, feed.fetch)

    assert [e.position for e in outcome.apply] == [1, 2, 3]
    assert (outcome.position, outcome.duplicates, outcome.healed, feed.calls) == (3, 0, 0, 0)


async def test_a_message_at_or_below_the_position_is_a_duplicate() -> None:
    events = stream(3)

    outcome = await sequence(2, [events[0], events[1], events[2], events[2]], Feed(events).fetch)

    assert [e.position for e in outcome.apply] == [3]
    assert outcome.duplicates == 3


async def test_a_lost_message_is_fetched_from_the_feed() -> None:
    events = stream(4, step=5)  # positions 1, 6, 11, 16: gaps in ids are not losses

    outcome = await sequence(0, [events[0], events[2], events[3]], Feed(events).fetch)

    assert [e.position for e in outcome.apply] == [1, 6, 11, 16]
    assert outcome.healed == 2  # 6 was missing; 11 came from the feed with it


async def test_a_hole_left_by_a_poison_message_is_filled_from_the_feed() -> None:
    events = stream(3)

    outcome = await sequence(1, [Hole(2), events[2]], Feed(events).fetch)

    assert [e.position for e in outcome.apply] == [2, 3]
    assert outcome.position == 3


async def test_a_feed_that_lacks_the_missing_events_stops_the_batch() -> None:
    events = stream(3)

    with pytest.raises(FeedGapError):
        await sequence(0, [events[2]], Feed(events[:1]).fetch)


# The property: whatever the broker does (duplicates, redeliveries in any order, losses) and
# wherever the projector crashes, the read model ends equal to the log, each event once.

script_steps = st.lists(
    st.tuples(
        st.sampled_from(
            ["batch", "duplicate", "lose", "crash_before_commit", "crash_after_commit"]
        ),
        st.integers(min_value=1, max_value=6),  # how many messages the step takes
        st.integers(min_value=0, max_value=10),  # where redelivered messages land
    ),
    max_size=60,
)


class Model:
    """The committed state of one projection: its position and counts, changed together."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.position = 0
        self.counts: Counter[int] = Counter()

    async def commit(self, batch: list[Event]) -> None:
        outcome = await sequence(self.position, batch, self.feed.fetch)
        for event in outcome.apply:
            assert isinstance(event.data, OrderCreatedV1)
            self.counts[event.data.customer_id] += 1
        self.position = outcome.position

    async def catch_up(self) -> None:
        """What a projector does at start-up and when idle: read the feed after its position."""
        await self.commit([e for e in self.feed.events if e.position > self.position])


@settings(max_examples=300, deadline=None)
@given(length=st.integers(min_value=0, max_value=40), script=script_steps, step=st.integers(1, 3))
async def test_any_interleaving_of_faults_counts_every_order_exactly_once(
    length: int, script: list[tuple[str, int, int]], step: int
) -> None:
    log = stream(length, step=step)
    model = Model(Feed(log))
    queue = list(log)  # published in order

    for action, size, offset in script:
        taken, rest = queue[:size], queue[size:]
        if action == "batch":
            await model.commit(taken)
            queue = rest
        elif action == "lose":
            queue = queue[1:]
        elif action == "duplicate":
            queue = queue[:offset] + taken[:1] + queue[offset:]
        elif action == "crash_before_commit":  # never acked: redelivered, maybe later on
            queue = rest[:offset] + taken + rest[offset:]
        else:  # committed, then died before the ack: redelivered all the same
            await model.commit(taken)
            queue = rest[:offset] + taken + rest[offset:]
    while queue:
        await model.commit(queue[:5])
        queue = queue[5:]
    await model.catch_up()

    assert model.counts == Counter(
        e.data.customer_id for e in log if isinstance(e.data, OrderCreatedV1)
    )
    assert model.position == (log[-1].position if log else 0)


async def test_a_message_whose_predecessor_lies_before_the_position_is_the_next_one() -> None:
    # A partition's events at 3, 7 and 12, and its position at 9 (a rebuild stopped at the
    # log's head, 9, where the partition's last event was 7): 12 follows without a gap.
    events = [
        *stream(3, first=3, step=4)[:2],
        envelope(
            stream(1)[0].data,
            id=uuid.uuid4(),
            position=12,
            previous_position=7,
            occurred_at=datetime.now(UTC),
            correlation_id="",
        ),
    ]
    feed = Feed(events)

    outcome = await sequence(9, [events[2]], feed.fetch)

    assert outcome.apply == [events[2]]
    assert (outcome.position, outcome.healed, feed.calls) == (12, 0, 0)


async def test_a_message_whose_predecessor_lies_beyond_the_position_is_healed_first() -> None:
    events = stream(3, first=3, step=4)  # 3, 7, 11
    feed = Feed(events)

    outcome = await sequence(5, [events[2]], feed.fetch)  # 7 was lost

    assert outcome.apply == events[1:]
    assert (outcome.position, outcome.healed, feed.calls) == (11, 2, 1)


async def test_a_message_of_another_layout_is_never_taken_as_chained() -> None:
    # While P changes, the unpartitioned queue also gets the partitioned messages: their
    # chain is their partition's, which says nothing of the events of the other partitions.
    events = stream(3)  # 1, 2, 3
    partitioned = msgspec.structs.replace(events[2], previous_position=1, partition="1of4")
    feed = Feed(events)

    outcome = await sequence(1, [partitioned], feed.fetch)

    assert outcome.apply == events[1:]  # 2 came from the feed: nothing skipped
    assert (outcome.position, outcome.healed, feed.calls) == (3, 2, 1)
