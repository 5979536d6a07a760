"""An event recorder that appends in one statement.

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

Its statements are awaited on the event loop by servicekit.application: a save, and a read
of the events of several aggregates in one query.

An application adds statements of its own to the transaction (a summary row kept beside
the events, say) by overriding `extra_sql` and `extra_param`: the SQL runs in the function
before the lock is taken, with the parameter as `extra` (jsonb).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Composable, Composed, Identifier

from servicekit.metrics import EVENTS_APPENDED


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
        EVENTS_APPENDED.labels(self.events_table_name).inc(len(stored_events))
        return [row[self.append_function] for row in rows]

    def select_streams_statement(self, ids: Sequence[Any]) -> tuple[Composed, tuple[Any, ...]]:
        """The one query that reads every stored event of these aggregates, in version order."""
        return self._select_streams, (list(ids),)
