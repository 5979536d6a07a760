"""Applications whose saves can be awaited on the event loop, alone or in groups.

`LoopSaves` awaits a `OneTripRecorder`'s statements over an async pool, with no thread hop:
a save, and a read of the events of several aggregates in one query (a consumer that loads
the aggregates of a batch pays one round trip for all of them).

`GroupCommitApplication` is the scaffold both event-sourced services share: a save is a
unit (the events of one request, and whatever the application keeps beside them), and
units are committed one transaction each or, with group commit, many to a transaction
(servicekit.groupcommit), from a thread or from the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Generic, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from servicekit.failfast import DatabaseGate, GuardedAsyncPool
from servicekit.groupcommit import AsyncGroupCommitter, GroupCommitter
from servicekit.metrics import EVENTS_APPENDED, GROUP_COMMIT_BATCH
from servicekit.recorder import OneTripRecorder

Unit = TypeVar("Unit")


def streams_of(rows: Sequence[Sequence[Any]]) -> dict[Any, list[StoredEvent]]:
    """(originator_id, originator_version, topic, state) rows as each aggregate's events."""
    streams: dict[Any, list[StoredEvent]] = {}
    for originator_id, version, topic, state in rows:
        streams.setdefault(originator_id, []).append(
            StoredEvent(
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
        )
    return streams


class LoopSaves:
    """An application's saves and stream reads, awaited on the event loop.

    With a `OneTripRecorder` and a pool, a save is the recorder's one statement and a read
    of several streams its one query, over the pool, with no thread. With any other
    recorder (the in-memory one of the unit tests), or no pool, the library's own calls run
    in a thread: the same outcome, the same errors.
    """

    def __init__(self, app: Application[Any], pool: GuardedAsyncPool | None = None) -> None:
        self.app = app
        self.recorder = app.recorder if isinstance(app.recorder, OneTripRecorder) else None
        self.pool = pool if self.recorder is not None else None

    async def save(self, events: Sequence[Any], **kwargs: Any) -> list[int]:
        """What `app.save(*events, **kwargs)` writes; each event's position in the log (its
        notification id), in order. A version conflict raises the library's IntegrityError
        and writes nothing."""
        if self.recorder is None or self.pool is None:
            recordings = await asyncio.to_thread(self.app.save, *events, **kwargs)
            return [recording.notification.id for recording in recordings]
        stored = [self.app.mapper.to_stored_event(event) for event in events]
        statement = self.recorder.append_statement(stored, **kwargs)
        if statement is None:
            return []
        async with self.pool.connection() as conn:
            try:
                cursor = await conn.execute(*statement, prepare=True)
            except psycopg.IntegrityError as exc:  # as the library's recorder reports it
                raise IntegrityError(str(exc)) from exc
            positions = [row[0] for row in await cursor.fetchall()]
        EVENTS_APPENDED.labels(self.recorder.events_table_name).inc(len(stored))
        return positions

    async def streams(self, ids: Sequence[Any]) -> dict[Any, list[StoredEvent]]:
        """Every stored event of each of these aggregates, in version order (one with none
        is missing from the answer)."""
        if not ids:
            return {}
        if self.recorder is None or self.pool is None:
            return await asyncio.to_thread(self._streams_in_thread, ids)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(*self.recorder.select_streams_statement(ids), prepare=True)
            return streams_of(await cursor.fetchall())

    def _streams_in_thread(self, ids: Sequence[Any]) -> dict[Any, list[StoredEvent]]:
        found = {i: list(self.app.recorder.select_events(i)) for i in dict.fromkeys(ids)}
        return {i: events for i, events in found.items() if events}

    async def aggregates(self, ids: Sequence[Any]) -> dict[Any, Any]:
        """The newest state of each of these aggregates that exists, read in one query."""
        streams = await self.streams(ids)
        return {
            aggregate_id: project_aggregate(None, map(self.app.mapper.to_domain_event, stored))
            for aggregate_id, stored in streams.items()
        }


class LoopApplication(Application[UUID]):
    """An application whose saves can be awaited on the event loop (`on_loop`): through a
    thread until `saves_from(pool)`, then one statement each over that pool."""

    def __init__(self, env: Any = None) -> None:
        super().__init__(env)
        self.on_loop = LoopSaves(self)

    def saves_from(self, pool: GuardedAsyncPool) -> None:
        self.on_loop = LoopSaves(self, pool)


IDLE_PING = 1.0  # seconds: a connection idle this long is checked before it is used


async def open_loop_pool(conninfo: str, size: int = 2) -> GuardedAsyncPool:
    """The small pool a process saves through from its event loop (one commit runs at a
    time, so two connections are plenty); close it with `close()`."""
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True},
        open=False,
        timeout=2.0,
    )
    await pool.open(wait=False)
    gate = DatabaseGate(name=(str(conninfo_to_dict(conninfo).get("dbname", "")), "loop"))
    return GuardedAsyncPool(pool, gate, ping_idle_after=IDLE_PING)


class GroupCommitApplication(LoopApplication, Generic[Unit]):
    """Saves in units: `commit_units` and `commit_units_on_loop` write a list of units in one
    transaction; `save_unit` and `save_unit_on_loop` commit one unit, alone or, with
    `group_commit`, together with the units saved concurrently."""

    def __init__(self, env: Any = None, *, group_commit: bool = False) -> None:
        super().__init__(env)
        batches = GROUP_COMMIT_BATCH.labels(self.name).observe
        self.committer = (
            GroupCommitter(self.commit_units, observe=batches) if group_commit else None
        )
        self.loop_committer = (
            AsyncGroupCommitter(self.commit_units_on_loop, observe=batches)
            if group_commit
            else None
        )

    def commit_units(self, units: list[Unit]) -> None:
        raise NotImplementedError

    async def commit_units_on_loop(self, units: list[Unit]) -> None:
        raise NotImplementedError

    def save_unit(self, unit: Unit) -> None:
        if self.committer is None:
            self.commit_units([unit])
        else:
            self.committer.save(unit)

    async def save_unit_on_loop(self, unit: Unit) -> None:
        if self.loop_committer is None:
            await self.commit_units_on_loop([unit])
        else:
            await self.loop_committer.save(unit)

    def close(self) -> None:
        if self.committer is not None:
            self.committer.close()
        super().close()
