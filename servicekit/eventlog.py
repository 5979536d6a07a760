"""The integration-event log: a service's public events, as envelopes, in notification order.

The relay publishes from it and the event feed serves from it, so both produce the same
envelopes and the same `previous_position` chain. Only events with a public topic are in
it; a position is the event's notification id, and `previous_position` is the position of
the public event before it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import AsyncConnection
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from contracts.codec import envelope
from contracts.events import Envelope, IntegrationEvent
from contracts.partitions import Partition
from servicekit.tracing import TRACEPARENT

# Event ids are derived from (stream, version), so a re-published event keeps its id.
EVENT_ID_NAMESPACE = uuid.UUID("0e6f6a4c-3f0e-4b8e-9a51-3d7b2f8f1c2a")

Translate = Callable[[Any], IntegrationEvent | None]
# Per partition, the position of the last public event published (or served) in it; None
# for a partition with none yet.
Chain = dict[int, int | None]


@dataclass(frozen=True)
class PartitionKey:
    """How a partitioned log finds each event's partition: a table beside the events with
    one row per stream, joined by the stream's id, and the SQL function of its key column
    and the partition count (for the order log: the order summaries' customer id and
    contracts.partitions.PARTITION_FUNCTION)."""

    table: str
    stream_column: str
    key_column: str
    function: str


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
_VERSION_BITS_CLEARED = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_5_RFC_4122 = (5 << 76) | (0x8000 << 48)


def event_id(originator_id: uuid.UUID | str, originator_version: int) -> uuid.UUID:
    """`uuid5(EVENT_ID_NAMESPACE, "<originator_id>:<version>")`, computed as uuid5 does it
    with less on the way: every published and served event pays for it (a test holds it
    equal to uuid5)."""
    name = f"{originator_id}:{originator_version}".encode()
    digest = hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()
    bits = int.from_bytes(digest[:16], "big") & _VERSION_BITS_CLEARED | _VERSION_5_RFC_4122
    return uuid.UUID(int=bits)


@dataclass(frozen=True)
class EventLog:
    recorder: ApplicationRecorder
    mapper: Mapper[Any]
    translate: Translate  # must translate every event of a public topic
    topics: Sequence[str]  # the public topics; events of other topics stay internal
    partition_key: PartitionKey | None = None  # how it is partitioned, if it may be

    def read(self, *, after: int, limit: int) -> list[Envelope[IntegrationEvent]]:
        """Up to `limit` envelopes after position `after` (the event feed's page)."""
        return self.read_chained(after=after, limit=limit, previous=self.previous_position(after))

    def read_chained(
        self, *, after: int, limit: int, previous: int | None
    ) -> list[Envelope[IntegrationEvent]]:
        """As `read`, for a caller that knows the last public position at or before `after`.

        The relay does: it is its own last published position.
        """
        notifications = self.recorder.select_notifications(
            start=after + 1, limit=limit, topics=list(self.topics)
        )
        return self.envelopes(notifications, previous)

    async def read_from(
        self, conn: AsyncConnection[Any], *, after: int, limit: int, previous: int | None
    ) -> list[Envelope[IntegrationEvent]]:
        """As `read_chained`, through an async connection of the caller's: no thread hop."""
        recorder = self.recorder
        assert isinstance(recorder, PostgresApplicationRecorder), "the relay needs Postgres"
        cursor = await conn.execute(
            _page_statement(recorder), (after, list(self.topics), limit), prepare=True
        )
        notifications = [
            Notification(
                id=row[0],
                originator_id=row[1],
                originator_version=row[2],
                topic=row[3],
                state=bytes(row[4]),
            )
            for row in await cursor.fetchall()
        ]
        return self.envelopes(notifications, previous)

    def envelopes(
        self, notifications: Sequence[Notification], previous: int | None
    ) -> list[Envelope[IntegrationEvent]]:
        """The notifications as envelopes, chained from `previous`."""
        chain = previous
        envelopes = []
        for notification in notifications:
            envelopes.append(self._envelope(notification, chain))
            chain = notification.id
        return envelopes

    def _envelope(
        self, notification: Notification, previous: int | None, partition: str | None = None
    ) -> Envelope[IntegrationEvent]:
        event: Any = self.mapper.to_domain_event(notification)
        data = self.translate(event)
        if data is None:  # the chain is defined by topics: each must translate
            raise TypeError(f"public topic {notification.topic} has no translation")
        return envelope(
            data,
            id=event_id(notification.originator_id, notification.originator_version),
            position=notification.id,
            previous_position=previous,
            occurred_at=event.timestamp,
            correlation_id=getattr(event, "correlation_id", ""),
            # stamped on the event by servicekit.tracing, when it was traced
            traceparent=event.__dict__.get(TRACEPARENT),
            partition=partition,
        )

    # Partitioned (contracts.partitions): each envelope names its partition, and its
    # `previous_position` is the position of the public event before it in that partition.

    def read_partitioned(
        self, *, after: int, limit: int, partitions: int, only: int | None = None
    ) -> list[Envelope[IntegrationEvent]]:
        """The event feed's page of a partitioned log: every partition, or `only` one."""
        with self._sync_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            which = list(range(partitions)) if only is None else [only]
            cursor.execute(self._chain_statement(), self._chain_args(after, partitions, which))
            chain: Chain = {int(row[0]): row[1] for row in cursor.fetchall()}
            cursor.execute(
                self._partitioned_page(), self._page_args(after, limit, partitions, only)
            )
            return self._partitioned(cursor.fetchall(), partitions, chain)

    async def read_partitioned_from(
        self, conn: AsyncConnection[Any], *, after: int, limit: int, partitions: int, chain: Chain
    ) -> list[Envelope[IntegrationEvent]]:
        """As `read_partitioned`, every partition, through an async connection of the
        caller's, chained from `chain` (the relay's own), which it moves along."""
        cursor = await conn.execute(
            self._partitioned_page(), self._page_args(after, limit, partitions, None), prepare=True
        )
        return self._partitioned(await cursor.fetchall(), partitions, chain)

    async def chain_at(self, conn: AsyncConnection[Any], position: int, partitions: int) -> Chain:
        """Each partition's last public position at or before `position`. One look back
        per partition: cheap for a busy one, a long scan for one with few events."""
        cursor = await conn.execute(
            self._chain_statement(), self._chain_args(position, partitions, range(partitions))
        )
        return {int(row[0]): row[1] for row in await cursor.fetchall()}

    def _partitioned(
        self, rows: Sequence[Sequence[Any]], partitions: int, chain: Chain
    ) -> list[Envelope[IntegrationEvent]]:
        envelopes = []
        for notification_id, originator_id, version, topic, state, index in rows:
            if index is None:  # the stream has no key row: its partition is unknowable
                raise LookupError(
                    f"event {notification_id} of {originator_id} has no partition key"
                )
            notification = Notification(
                id=notification_id,
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
            name = str(Partition(index, partitions))
            envelopes.append(self._envelope(notification, chain.get(index), name))
            chain[index] = notification_id
        return envelopes

    def _key(self) -> PartitionKey:
        if self.partition_key is None:
            raise TypeError("this event log is not partitioned")
        return self.partition_key

    def _names(self) -> dict[str, Any]:
        recorder = self.recorder
        assert isinstance(recorder, PostgresApplicationRecorder), "partitions need Postgres"
        key = self._key()
        return {
            "events": Identifier(recorder.datastore.schema, recorder.events_table_name),
            "keys": Identifier(recorder.datastore.schema, key.table),
            "stream": Identifier(key.stream_column),
            "key": Identifier(key.key_column),
            "function": Identifier(key.function),
        }

    def _partitioned_page(self) -> Composed:
        return SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
            " {function}(k.{key}, %(partitions)s) FROM {events} e"
            " LEFT JOIN {keys} k ON k.{stream} = e.originator_id"
            " WHERE e.notification_id > %(after)s AND e.topic = ANY(%(topics)s)"
            " AND (%(only)s::integer IS NULL OR {function}(k.{key}, %(partitions)s) = %(only)s)"
            " ORDER BY e.notification_id LIMIT %(limit)s"
        ).format(**self._names())

    def _page_args(
        self, after: int, limit: int, partitions: int, only: int | None
    ) -> dict[str, Any]:
        return {
            "after": after,
            "limit": limit,
            "partitions": partitions,
            "only": only,
            "topics": list(self.topics),
        }

    def _chain_statement(self) -> Composed:
        return SQL(
            "SELECT p, (SELECT e.notification_id FROM {events} e"
            " JOIN {keys} k ON k.{stream} = e.originator_id"
            " WHERE e.notification_id <= %(at)s AND e.topic = ANY(%(topics)s)"
            " AND {function}(k.{key}, %(partitions)s) = p"
            " ORDER BY e.notification_id DESC LIMIT 1) FROM unnest(%(which)s::integer[]) AS p"
        ).format(**self._names())

    def _chain_args(self, at: int, partitions: int, which: Iterable[int]) -> dict[str, Any]:
        return {
            "at": at,
            "partitions": partitions,
            "which": list(which),
            "topics": list(self.topics),
        }

    def _sync_connection(self) -> Any:
        recorder = self.recorder
        assert isinstance(recorder, PostgresApplicationRecorder), "partitions need Postgres"
        return recorder.datastore.get_connection()

    def previous_position(self, position: int) -> int | None:
        """The position of the last public event at or before `position`; None if none."""
        if position <= 0:
            return None
        if isinstance(self.recorder, PostgresApplicationRecorder):
            return _last_public_position(self.recorder, position, self.topics)
        found = self.recorder.select_notifications(
            start=1, limit=position, stop=position, topics=list(self.topics)
        )
        return found[-1].id if found else None

    def last_position(self) -> int | None:
        """The position of the newest public event; None while there is none."""
        return self.previous_position(2**63 - 1)

    def pending(self, after: int, cap: int = 100_000) -> int:
        """How many public events lie after `after` (counted up to `cap`)."""
        if isinstance(self.recorder, PostgresApplicationRecorder):
            return _count_after(self.recorder, after, self.topics, cap)
        found = self.recorder.select_notifications(
            start=after + 1, limit=cap, topics=list(self.topics)
        )
        return len(found)


def _page_statement(recorder: PostgresApplicationRecorder) -> SQL | Composed:
    return SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {t}"
        " WHERE notification_id > %s AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"
    ).format(t=Identifier(recorder.datastore.schema, recorder.events_table_name))


def _last_public_position(
    recorder: PostgresApplicationRecorder, position: int, topics: Sequence[str]
) -> int | None:
    statement = SQL(
        "SELECT max(notification_id) FROM {t} WHERE notification_id <= %s AND topic = ANY(%s)"
    ).format(t=Identifier(recorder.datastore.schema, recorder.events_table_name))
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, (position, list(topics)))
        row = curs.fetchone()
        return None if row is None else row["max"]


def _count_after(
    recorder: PostgresApplicationRecorder, after: int, topics: Sequence[str], cap: int
) -> int:
    statement = SQL(
        "SELECT count(*) FROM (SELECT 1 FROM {t} WHERE notification_id > %s"
        " AND topic = ANY(%s) LIMIT %s) AS pending"
    ).format(t=Identifier(recorder.datastore.schema, recorder.events_table_name))
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, (after, list(topics), cap))
        row = curs.fetchone()
        return 0 if row is None else int(row["count"])
