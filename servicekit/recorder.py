"""An event recorder that appends in one statement, and saves awaited on the event loop.

The library's recorder appends in a pipelined transaction of seven statements (BEGIN,
SET lock_timeout, LOCK TABLE, NOTIFY, the application's own statements, INSERT, COMMIT),
each one a trip through psycopg's Python. Here the same steps run inside a PL/pgSQL
function, called once with the events as four plain arrays, so the work per save is one
prepared statement. What the library guarantees still holds, because the function takes
the same steps in the same transaction:

- the table's EXCLUSIVE lock (within `lock_timeout`) serialises the writers, so
  notification ids are issued in commit order and a reader tailing the log never passes a
  gap that fills in later;
- the NOTIFY wakes the listeners when the transaction commits;
- a version conflict is a unique violation, which the library's connection turns into its
  `IntegrityError`, and nothing of the save is written.

`LoopSaves` awaits both on the event loop, over an async pool, with no thread hop: a save,
and a read of the events of several aggregates in one query (a consumer that loads the
aggregates of a batch pays one round trip for all of them).

An application adds statements of its own to the transaction (a summary row kept beside
the events, say) by overriding `extra_sql` and `extra_param`: the SQL runs in the function
before the lock is taken, with the parameter as `extra` (jsonb).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import AsyncConnection
from psycopg.sql import SQL, Composable, Composed, Identifier
from psycopg_pool import AsyncConnectionPool

from servicekit.failfast import GuardedAsyncPool


def append_function(events_table: str) -> str:
    """The name of an event table's append function (created with the table)."""
    return f"{events_table}_append"


class OneTripRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        self.append_function = append_function(events_table_name)
        function = Identifier(self.append_function)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                " ids {id_type}[], versions bigint[], topics text[], states bytea[], extra jsonb)"
                " RETURNS SETOF bigint LANGUAGE plpgsql AS $body$"
                " BEGIN"
                "  {extra_sql}"
                "  PERFORM set_config('lock_timeout', {lock_timeout}, true);"
                "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;"
                "  PERFORM pg_notify({channel}, '');"
                "  RETURN QUERY INSERT INTO {schema}.{table}"
                "   (originator_id, originator_version, topic, state)"
                "   SELECT * FROM unnest(ids, versions, topics, states)"
                "   RETURNING notification_id;"
                " END $body$"
            ).format(
                schema=schema,
                function=function,
                id_type=SQL(self.datastore.originator_id_type),
                extra_sql=self.extra_sql(),
                lock_timeout=f"{self.datastore.lock_timeout}s",
                table=Identifier(self.events_table_name),
                channel=self.channel_name,
            )
        )
        self._append = SQL(
            "SELECT * FROM {schema}.{function}(%s, %s::bigint[], %s, %s, %s::jsonb)"
        ).format(schema=schema, function=function)
        self._select_streams = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
            " WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema=schema, table=Identifier(self.events_table_name))

    def extra_sql(self) -> Composable:
        """Statements the application adds to each append, run first; `extra` is in scope."""
        return SQL("")

    def extra_param(self, **kwargs: Any) -> str | None:
        """The `extra` (JSON text) for the statements of `extra_sql`, from `save()`'s keywords."""
        return None

    def append_statement(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> tuple[Composed, tuple[Any, ...]] | None:
        """The one statement that appends these events (and the application's extras), with
        its parameters; None when there is nothing to do."""
        extra = self.extra_param(**kwargs)
        if not stored_events and extra is None:
            return None
        params = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
            extra,
        )
        return self._append, params

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        statement = self.append_statement(stored_events, **kwargs)
        if statement is None:
            return []
        with self.datastore.get_connection() as conn:
            rows = conn.execute(*statement, prepare=True).fetchall()
        return [row[self.append_function] for row in rows]

    def select_streams_statement(self, ids: Sequence[Any]) -> tuple[Composed, tuple[Any, ...]]:
        """The one query that reads every stored event of these aggregates, in version order."""
        return self._select_streams, (list(ids),)


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

    async def save(self, events: Sequence[Any], **kwargs: Any) -> None:
        """What `app.save(*events, **kwargs)` writes; a version conflict raises the
        library's IntegrityError and writes nothing."""
        if self.recorder is None or self.pool is None:
            await asyncio.to_thread(self.app.save, *events, **kwargs)
            return
        stored = [self.app.mapper.to_stored_event(event) for event in events]
        statement = self.recorder.append_statement(stored, **kwargs)
        if statement is None:
            return
        async with self.pool.connection() as conn:
            try:
                await conn.execute(*statement, prepare=True)
            except psycopg.IntegrityError as exc:  # as the library's recorder reports it
                raise IntegrityError(str(exc)) from exc

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
    return GuardedAsyncPool(pool, ping_idle_after=IDLE_PING)
