"""Deciding what to apply: duplicates dropped, gaps filled from the feed, nothing skipped.

This is the pure heart of exactly-once projection. Given the stored position and the items
that arrived (envelopes, or holes where a poison message stood), it returns the envelopes to
apply, in order, and the position they lead to. The caller applies them and stores that
position in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from contracts.events import Envelope, IntegrationEvent

Event = Envelope[IntegrationEvent]
# fetch(after, upto): the feed's envelopes with after < position <= upto, in order.
Fetch = Callable[[int, int], Awaitable[list[Event]]]


class FeedGapError(RuntimeError):
    """The feed did not have an event a message says exists: try again later."""


@dataclass(frozen=True)
class Hole:
    """A message that could not be read, but whose position is known (from its headers)."""

    position: int


@dataclass
class Outcome:
    position: int
    apply: list[Event] = field(default_factory=list)
    duplicates: int = 0
    healed: int = 0  # envelopes fetched from the feed to fill gaps


async def sequence(
    position: int, arrivals: Sequence[Event | Hole], fetch: Fetch, partition: str | None = None
) -> Outcome:
    """What to apply from `position` on. `partition` is the stream the position is of (None:
    the whole log); an envelope of another stream (published while the layout of partitions
    changes) has a chain that says nothing of this one's, so its gap is filled from the feed
    whatever its chain says."""
    outcome = Outcome(position)
    for item in arrivals:
        if item.position <= outcome.position:
            outcome.duplicates += isinstance(item, Envelope)
            continue
        # Chained: nothing of its stream lies between the position and it. A position holds
        # everything of the stream up to it, so a message whose predecessor is at or before
        # the position is the next one, even when the position itself is not an event of
        # this stream (a partition's position after a rebuild is the whole log's head).
        chained = (
            isinstance(item, Envelope)
            and item.partition == partition
            and (item.previous_position or 0) <= outcome.position
        )
        if chained:
            outcome.apply.append(item)  # type: ignore[arg-type]
        else:  # something before it was lost (or this is a hole): the feed has the truth
            missing = await fetch(outcome.position, item.position)
            if not missing or missing[-1].position != item.position:
                raise FeedGapError(f"the feed lacks events up to position {item.position}")
            outcome.apply += missing
            outcome.healed += len(missing)
        outcome.position = item.position
    return outcome
