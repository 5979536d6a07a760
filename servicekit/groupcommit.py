"""Group commit: aggregates saved concurrently are committed together, in one transaction.

The event store serialises writers with a table lock, so one save per transaction caps the
rate at a few hundred per second whatever the concurrency. Here every caller hands its
aggregates to one committer thread and waits; the committer takes everything that queued up
while the previous transaction ran (at most `max_batch`, waiting at most `max_wait` for
more only when `max_wait` > 0) and saves it with one `save(*aggregates)`. A lone caller is
committed at once. When a batch fails on one aggregate (a version conflict), the batch is
split in halves and retried, so only the caller whose aggregate conflicts gets the error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError

Commit = Callable[[list[Any]], None]  # commit(units): all of them in one transaction


class _Request:
    """One caller's unit, and a one-shot lock it waits on (cheaper than a Future)."""

    __slots__ = ("done", "error", "unit")

    def __init__(self, unit: Any) -> None:
        self.unit = unit  # what one caller saves; retried as it is when a batch is split
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done.release()


@dataclass
class Stats:
    transactions: int = 0
    requests: int = 0
    splits: int = 0

    @property
    def mean_batch(self) -> float:
        return self.requests / self.transactions if self.transactions else 0.0


class GroupCommitter:
    def __init__(self, commit: Commit, *, max_batch: int = 500, max_wait: float = 0.0) -> None:
        self._commit_units = commit
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.stats = Stats()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Saves handed over and not yet taken into a transaction: the backlog while one is
        committing (tests wait on it to know who shares the next). It asks the queue, so the
        savers pay nothing for it."""
        return self._queue.qsize()

    def save(self, unit: Any) -> None:
        """Commit this unit (with others'); raises what committing it alone would raise.

        A unit must be safe to commit again after a failed attempt: stored events, say, not
        aggregates (saving an aggregate takes its pending events away).
        """
        request = _Request(unit)
        self._queue.put(request)
        request.done.acquire()  # released by the committer once the unit's fate is known
        if request.error is not None:
            raise request.error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first, *self._more()]
            closing = batch[-1] is None
            self._commit([r for r in batch if r is not None])
            if closing:
                return

    def _more(self) -> list[_Request | None]:
        """What else is waiting (without waiting, unless max_wait > 0)."""
        taken: list[_Request | None] = []
        deadline = time.monotonic() + self.max_wait
        while len(taken) < self.max_batch - 1:
            try:
                remaining = deadline - time.monotonic()
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            taken.append(item)
            if item is None:
                break
        return taken

    def _commit(self, batch: list[_Request]) -> None:
        try:
            self._commit_units([r.unit for r in batch])
        except IntegrityError as exc:
            if len(batch) == 1:
                batch[0].finish(exc)
                return
            self.stats.splits += 1
            middle = len(batch) // 2
            self._commit(batch[:middle])
            self._commit(batch[middle:])
            return
        except BaseException as exc:  # the database is down: every caller learns it
            for request in batch:
                request.finish(exc)
            return
        self.stats.transactions += 1
        self.stats.requests += len(batch)
        for request in batch:
            request.finish()
