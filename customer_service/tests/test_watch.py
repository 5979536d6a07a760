"""The position watch: readers waiting for orders_count are woken by the projector's commit,
never before it, and never left waiting by a dropped connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from customer_service.store import migrate
from projections.sequencer import Outcome
from projections.tracking import advance_all, ensure_tracking, status
from projections.watch import APPLICATION_NAME, BehindError, PositionWatch, parse_notification
from servicekit.postgres import PostgresSettings
from tests.support import Databases, eventually

pytestmark = pytest.mark.integration

NAME = "orders_count"


@pytest.fixture
async def database(databases: Databases) -> PostgresSettings:
    settings = databases.fresh("customers_watch")
    migrate(settings)
    async with await psycopg.AsyncConnection.connect(settings.conninfo(), autocommit=True) as db:
        await ensure_tracking(db, NAME)
    return settings


@pytest.fixture
async def watch(database: PostgresSettings) -> AsyncIterator[PositionWatch]:
    watching = PositionWatch(database.conninfo())
    watching.start()
    await eventually(lambda: watching.listening, within=10, what="the watch listening")
    yield watching
    await watching.close()


async def advance(
    database: PostgresSettings, position: int, *, committed: asyncio.Event | None = None
) -> None:
    """Move orders_count to `position` as a projector does; with `committed`, the
    transaction stays open until that event is set."""
    connecting = psycopg.AsyncConnection.connect(database.conninfo(), autocommit=True)
    async with await connecting as db, db.transaction():
        await advance_all(db.cursor(), {NAME: (Outcome(position), 0)})
        if committed is not None:
            await committed.wait()


async def stored_position(database: PostgresSettings) -> tuple[None, int]:
    async with await psycopg.AsyncConnection.connect(database.conninfo()) as db:
        found = await status(db, NAME)
    assert found is not None
    return None, int(found["position"])


def test_a_notification_names_a_read_model_and_a_position() -> None:
    assert parse_notification("orders_count:42") == ("orders_count", 42)
    assert parse_notification("orders_by_status:7") == ("orders_by_status", 7)
    assert parse_notification("orders_count:") is None
    assert parse_notification(":5") is None
    assert parse_notification("orders_count:-3") is None
    assert parse_notification("") is None


async def test_a_waiter_wakes_when_the_advance_commits_and_not_before(
    database: PostgresSettings, watch: PositionWatch
) -> None:
    waiting = asyncio.create_task(watch.reached(NAME, 5, within=20))
    commit = asyncio.Event()
    advancing = asyncio.create_task(advance(database, 5, committed=commit))
    await eventually(lambda: bool(watch._waiters.get(NAME)), within=5, what="a waiter")
    woken, _ = await asyncio.wait({waiting}, timeout=0.3)  # news before the commit: in time

    assert not woken  # the position is moved, but not committed
    commit.set()
    assert await asyncio.wait_for(waiting, 10) is True
    await advancing
    assert watch.positions[NAME] == 5


async def test_a_waiter_for_a_position_short_of_the_commit_wakes_and_one_beyond_does_not(
    database: PostgresSettings, watch: PositionWatch
) -> None:
    short = asyncio.create_task(watch.reached(NAME, 3, within=10))
    beyond = asyncio.create_task(watch.reached(NAME, 9, within=1.0))
    await eventually(lambda: len(watch._waiters.get(NAME, [])) == 2, within=5, what="waiters")

    await advance(database, 4)

    assert await short is True
    assert await beyond is False  # its deadline passed first
    assert watch._waiters[NAME] == []  # none left behind


async def test_a_known_position_answers_at_once(
    database: PostgresSettings, watch: PositionWatch
) -> None:
    await advance(database, 7)
    await eventually(lambda: watch.positions.get(NAME) == 7, within=5, what="the notification")

    assert await watch.reached(NAME, 6, within=0.001) is True


async def test_a_read_is_answered_once_it_is_at_the_position_or_told_it_is_behind(
    database: PostgresSettings, watch: PositionWatch
) -> None:
    reads = 0

    async def read() -> tuple[None, int]:
        nonlocal reads
        reads += 1
        return await stored_position(database)

    reading = asyncio.create_task(watch.read_at_least(NAME, 2, read, within=20))
    await eventually(lambda: bool(watch._waiters.get(NAME)), within=5, what="a waiter")
    await advance(database, 2)

    assert await reading == (None, 2)
    assert reads == 2  # once before the wait, once after the wake-up: no polling
    with pytest.raises(BehindError) as behind:
        await watch.read_at_least(NAME, 3, read, within=0.5)
    assert (behind.value.wanted, behind.value.position) == (3, 2)


async def test_a_watch_ahead_of_the_database_reads_again_instead_of_trusting_itself(
    database: PostgresSettings, watch: PositionWatch
) -> None:
    watch.positions[NAME] = 100  # as if the position had been set back since
    reads = 0

    async def read() -> tuple[None, int]:
        nonlocal reads
        reads += 1
        return await stored_position(database)

    with pytest.raises(BehindError):
        await watch.read_at_least(NAME, 50, read, within=0.5)
    assert reads == 2  # the read, one fresh read to settle it, then a wait: no spinning
    assert watch.positions[NAME] == 0


async def test_a_dropped_connection_is_made_again_and_what_it_missed_is_read(
    database: PostgresSettings, watch: PositionWatch
) -> None:
    waiting = asyncio.create_task(watch.reached(NAME, 8, within=30))
    async with await psycopg.AsyncConnection.connect(database.conninfo(), autocommit=True) as db:
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (APPLICATION_NAME,),
        )
    await eventually(lambda: not watch.listening, within=10, what="the watch to notice")
    await advance(database, 8)  # notified while nobody listens

    assert await asyncio.wait_for(waiting, 20) is True  # read when it listened again
    assert watch.listening
