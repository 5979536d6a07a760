"""Group commit: shared transactions under load, no added wait when idle, failures isolated."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from servicekit.groupcommit import AsyncGroupCommitter, GroupCommitter
from tests.support import eventually


class Store:
    """Records each transaction; can hold the first one open, or refuse an aggregate."""

    def __init__(self, refuse: set[Any] | None = None, hold_first: bool = False) -> None:
        self.transactions: list[tuple[Any, ...]] = []
        self.refuse = refuse or set()
        self.release = threading.Event()
        self.entered = threading.Event()
        self.hold_first = hold_first

    def save(self, aggregates: list[Any]) -> None:
        if self.hold_first and not self.transactions:
            self.entered.set()
            self.release.wait(timeout=10)
        if self.refuse & set(aggregates):
            raise IntegrityError("version taken")
        self.transactions.append(tuple(aggregates))


def test_a_lone_save_is_committed_at_once_in_its_own_transaction() -> None:
    store = Store()
    committer = GroupCommitter(store.save)

    committer.save("a")

    assert store.transactions == [("a",)]
    committer.close()


async def test_saves_that_arrive_during_a_transaction_share_the_next_one() -> None:
    store = Store(hold_first=True)
    committer = GroupCommitter(store.save)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=11) as pool:
        first = loop.run_in_executor(pool, committer.save, "first")
        await eventually(store.entered.is_set, what="the first transaction open")
        rest = [loop.run_in_executor(pool, committer.save, f"o{n}") for n in range(10)]
        await eventually(lambda: committer.waiting == 10, what="ten saves behind the first")
        store.release.set()
        await asyncio.wait_for(asyncio.gather(first, *rest), timeout=10)

    assert store.transactions[0] == ("first",)
    assert sorted(store.transactions[1]) == sorted(f"o{n}" for n in range(10))
    assert committer.stats.mean_batch == pytest.approx(5.5)
    assert committer.waiting == 0
    committer.close()


async def test_a_conflict_fails_only_the_save_it_belongs_to() -> None:
    store = Store(refuse={"bad"}, hold_first=True)
    committer = GroupCommitter(store.save)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = loop.run_in_executor(pool, committer.save, "first")
        await eventually(store.entered.is_set, what="the first transaction open")
        others = {n: loop.run_in_executor(pool, committer.save, n) for n in ("x", "bad", "y", "z")}
        await eventually(lambda: committer.waiting == 4, what="four saves behind the first")
        store.release.set()
        await asyncio.wait_for(first, timeout=10)
        with pytest.raises(IntegrityError):
            await asyncio.wait_for(others.pop("bad"), timeout=10)
        await asyncio.wait_for(asyncio.gather(*others.values()), timeout=10)

    saved = {a for t in store.transactions for a in t}
    assert saved == {"first", "x", "y", "z"}
    assert committer.stats.splits >= 1
    committer.close()


def test_a_database_outage_reaches_every_caller() -> None:
    def down(_: list[Any]) -> None:
        raise OperationalError("connection refused")

    committer = GroupCommitter(down)

    with pytest.raises(OperationalError):
        committer.save("a")
    committer.close()


class AsyncStore:
    """Store, for the event loop: records each transaction; can hold the first one open."""

    def __init__(self, refuse: set[Any] | None = None, hold_first: bool = False) -> None:
        self.transactions: list[tuple[Any, ...]] = []
        self.refuse = refuse or set()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.hold_first = hold_first

    async def save(self, units: list[Any]) -> None:
        if self.hold_first and not self.transactions:
            self.entered.set()
            await self.release.wait()
        if self.refuse & set(units):
            raise IntegrityError("version taken")
        self.transactions.append(tuple(units))


async def test_on_the_loop_a_lone_save_is_committed_in_its_own_transaction() -> None:
    store = AsyncStore()
    committer = AsyncGroupCommitter(store.save)

    await committer.save("a")

    assert store.transactions == [("a",)]
    assert committer.waiting == 0


async def test_on_the_loop_saves_during_a_transaction_share_the_next_one() -> None:
    store = AsyncStore(hold_first=True)
    committer = AsyncGroupCommitter(store.save)
    first = asyncio.ensure_future(committer.save("first"))
    await asyncio.wait_for(store.entered.wait(), timeout=10)
    rest = [asyncio.ensure_future(committer.save(f"o{n}")) for n in range(10)]
    await eventually(lambda: committer.waiting == 10, what="ten saves behind the first")

    store.release.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), timeout=10)

    assert store.transactions[0] == ("first",)
    assert sorted(store.transactions[1]) == sorted(f"o{n}" for n in range(10))
    assert committer.stats.mean_batch == pytest.approx(5.5)


async def test_on_the_loop_a_conflict_fails_only_its_own_save() -> None:
    store = AsyncStore(refuse={"bad"}, hold_first=True)
    committer = AsyncGroupCommitter(store.save)
    first = asyncio.ensure_future(committer.save("first"))
    await asyncio.wait_for(store.entered.wait(), timeout=10)
    others = {n: asyncio.ensure_future(committer.save(n)) for n in ("x", "bad", "y", "z")}
    store.release.set()

    await asyncio.wait_for(first, timeout=10)
    with pytest.raises(IntegrityError):
        await asyncio.wait_for(others.pop("bad"), timeout=10)
    await asyncio.wait_for(asyncio.gather(*others.values()), timeout=10)

    assert {a for t in store.transactions for a in t} == {"first", "x", "y", "z"}
    assert committer.stats.splits >= 1


async def test_on_the_loop_an_outage_reaches_every_caller_and_the_next_save_goes_on() -> None:
    outage = True

    async def flaky(units: list[Any]) -> None:
        if outage:
            raise OperationalError("connection refused")

    committer = AsyncGroupCommitter(flaky)
    results = await asyncio.gather(*(committer.save(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, OperationalError) for r in results)

    outage = False
    await asyncio.wait_for(committer.save("after"), timeout=10)
    assert committer.stats.requests == 1
