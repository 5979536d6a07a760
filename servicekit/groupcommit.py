"""Group commit: aggregates saved concurrently are committed together, in one transaction.

The event store serialises writers with a table lock, so one save per transaction caps the
rate at a few hundred per second whatever the concurrency. Here the callers take turns to
lead: a caller that finds no transaction running commits, in its own thread, everything
that has queued up (at most `max_batch`), its own unit among it; callers that arrive while
it commits queue up and wait. When the leader is done, it hands the lead to the first of
them, who commits the next batch. A lone caller is therefore committed at once, in its own
thread, with no hand-over to another. When a batch fails on one aggregate (a version
conflict), the batch is split in halves and retried, so only the caller whose aggregate
conflicts gets the error.

`AsyncGroupCommitter` does the same for callers on one event loop, with no thread: a
caller that finds no commit running starts one, as a task, which commits batch after
batch until nothing is queued; a caller awaits its own unit's outcome.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError

Commit = Callable[[list[Any]], None]  # commit(units): all of them in one transaction
AsyncCommit = Callable[[list[Any]], Awaitable[None]]


def commit_splitting(
    commit: Commit, units: list[Any], stats: Stats | None = None
) -> list[IntegrityError | None]:
    """Commit the units in one transaction; when one of them conflicts, split the batch in
    halves and retry, so only the conflicting units fail. For each unit, in order: None
    (committed) or its IntegrityError. Any other failure (the database is down) raises.
    `stats`, if given, counts the transactions and the splits."""
    stats = stats or Stats()
    try:
        commit(units)
    except IntegrityError as exc:
        if len(units) == 1:
            return [exc]
        stats.splits += 1
        middle = len(units) // 2
        first = commit_splitting(commit, units[:middle], stats)
        return first + commit_splitting(commit, units[middle:], stats)
    stats.committed(len(units))
    return [None] * len(units)


async def commit_splitting_async(
    commit: AsyncCommit, units: list[Any], stats: Stats | None = None
) -> list[IntegrityError | None]:
    """`commit_splitting`, awaiting an asynchronous commit."""
    stats = stats or Stats()
    try:
        await commit(units)
    except IntegrityError as exc:
        if len(units) == 1:
            return [exc]
        stats.splits += 1
        middle = len(units) // 2
        first = await commit_splitting_async(commit, units[:middle], stats)
        return first + await commit_splitting_async(commit, units[middle:], stats)
    stats.committed(len(units))
    return [None] * len(units)


class _Request:
    """One caller's unit, and a one-shot lock it waits on (cheaper than a Future).

    The lock is released once: when the unit's fate is known (`finished`), or when the
    caller is handed the lead, to commit the next batch itself.
    """

    __slots__ = ("error", "finished", "unit", "wake")

    def __init__(self, unit: Any) -> None:
        self.unit = unit  # what one caller saves; retried as it is when a batch is split
        self.error: BaseException | None = None
        self.finished = False
        self.wake = threading.Lock()
        self.wake.acquire()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.finished = True
        self.wake.release()


@dataclass
class Stats:
    transactions: int = 0
    requests: int = 0
    splits: int = 0
    observe: Callable[[float], None] | None = None  # each transaction's size, for a metric

    def committed(self, units: int) -> None:
        self.transactions += 1
        self.requests += units
        if self.observe is not None:
            self.observe(units)

    @property
    def mean_batch(self) -> float:
        return self.requests / self.transactions if self.transactions else 0.0


class GroupCommitter:
    def __init__(
        self,
        commit: Commit,
        *,
        max_batch: int = 500,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._commit_units = commit
        self.max_batch = max_batch
        self.stats = Stats(observe=observe)
        self._mutex = threading.Lock()
        self._queued: deque[_Request] = deque()
        self._leading = False  # a caller is committing a batch now

    @property
    def waiting(self) -> int:
        """Saves queued and not yet taken into a transaction: the backlog while one is
        committing (tests wait on it to know who shares the next)."""
        return len(self._queued)

    def save(self, unit: Any) -> None:
        """Commit this unit (with others'); raises what committing it alone would raise.

        A unit must be safe to commit again after a failed attempt: stored events, say, not
        aggregates (saving an aggregate takes its pending events away).
        """
        request = _Request(unit)
        with self._mutex:
            self._queued.append(request)
            lead = not self._leading
            self._leading = True
        if not lead:
            request.wake.acquire()  # finished by a leader, or handed the lead
        if not request.finished:
            self._lead()
        if request.error is not None:
            raise request.error

    def close(self) -> None:
        """Nothing to stop: the committing is done by the callers' own threads."""

    def _lead(self) -> None:
        """Commit one batch (the leader's unit is in it), then pass the lead on."""
        with self._mutex:
            count = min(len(self._queued), self.max_batch)
            batch = [self._queued.popleft() for _ in range(count)]
        self._commit(batch)
        with self._mutex:
            if self._queued:
                self._queued[0].wake.release()  # the next in line leads; it stays queued
            else:
                self._leading = False

    def _commit(self, batch: list[_Request]) -> None:
        try:
            outcomes = commit_splitting(self._commit_units, [r.unit for r in batch], self.stats)
        except BaseException as exc:  # the database is down: every caller learns it
            for request in batch:
                request.finish(exc)
            return
        for request, error in zip(batch, outcomes, strict=True):
            request.finish(error)


class AsyncGroupCommitter:
    def __init__(
        self,
        commit: AsyncCommit,
        *,
        max_batch: int = 500,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._commit_units = commit
        self.max_batch = max_batch
        self.stats = Stats(observe=observe)
        self._queued: deque[tuple[Any, asyncio.Future[None]]] = deque()
        self._committing: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Saves queued and not yet taken into a transaction."""
        return len(self._queued)

    async def save(self, unit: Any) -> None:
        """Commit this unit (with others'); raises what committing it alone would raise."""
        outcome = asyncio.get_running_loop().create_future()
        self._queued.append((unit, outcome))
        if self._committing is None:
            self._committing = asyncio.create_task(self._commit_queued())
        await outcome

    async def _commit_queued(self) -> None:
        batch: list[tuple[Any, asyncio.Future[None]]] = []
        try:
            while self._queued:
                count = min(len(self._queued), self.max_batch)
                batch = [self._queued.popleft() for _ in range(count)]
                try:
                    units = [unit for unit, _ in batch]
                    errors = await commit_splitting_async(self._commit_units, units, self.stats)
                except Exception as exc:  # the database is down: every caller learns it
                    errors = [exc] * len(batch)  # type: ignore[list-item]
                for (_, outcome), error in zip(batch, errors, strict=True):
                    if outcome.done():  # its caller was cancelled
                        continue
                    if error is None:
                        outcome.set_result(None)
                    else:
                        outcome.set_exception(error)
        finally:  # cancelled (the loop is closing): no caller is left waiting for ever
            for _, outcome in [*batch, *self._queued]:
                outcome.cancel()
            self._queued.clear()
            self._committing = None
