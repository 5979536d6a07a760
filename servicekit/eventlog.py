"""The integration-event log: a service's public events, as envelopes, in notification order.

The relay publishes from it and the event feed serves from it, so both produce the same
envelopes and the same `previous_position` chain. Only events with a public topic are in
it; a position is the event's notification id, and `previous_position` is the position of
the public event before it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import AsyncConnection
from psycopg.sql import SQL, Composed, Identifier

from contracts.codec import envelope
from contracts.events import Envelope, IntegrationEvent
from servicekit.tracing import TRACEPARENT

# Event ids are derived from (stream, version), so a re-published event keeps its id.
EVENT_ID_NAMESPACE = uuid.UUID("0e6f6a4c-3f0e-4b8e-9a51-3d7b2f8f1c2a")

Translate = Callable[[Any], IntegrationEvent | None]


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
            event: Any = self.mapper.to_domain_event(notification)
            data = self.translate(event)
            if data is None:  # the chain is defined by topics: each must translate
                raise TypeError(f"public topic {notification.topic} has no translation")
            envelopes.append(
                envelope(
                    data,
                    id=event_id(notification.originator_id, notification.originator_version),
                    position=notification.id,
                    previous_position=chain,
                    occurred_at=event.timestamp,
                    correlation_id=getattr(event, "correlation_id", ""),
                    # stamped on the event by servicekit.tracing, when it was traced
                    traceparent=event.__dict__.get(TRACEPARENT),
                )
            )
            chain = notification.id
        return envelopes

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
