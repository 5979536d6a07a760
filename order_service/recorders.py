"""Event recorders that also keep the order-summary table, in the same transaction as the events.

The summary rows ride along as a keyword argument of `Application.save()`, which the library
passes down to the recorder's insert. So an order is listed the moment its save commits, and a
failed save (an idempotency duplicate, a version conflict) leaves no summary behind.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Composable, Identifier

from order_service.views import OrderPage, OrderView
from servicekit.recorder import OneTripRecorder

SUMMARIES = "order_summaries"


class OrderSummaries(Protocol):
    def select_order_page(
        self, *, customer_id: int | None, limit: int, before: int | None
    ) -> OrderPage: ...

    def position_of(self, order_id: Any, *, version: int) -> int | None:
        """The log position of this version of the order; None if it was never stored."""
        ...


def _page(rows: list[tuple[int, OrderView]], limit: int) -> OrderPage:
    more = len(rows) > limit
    rows = rows[:limit]
    next_position = rows[-1][0] if more and rows else None
    return OrderPage(orders=[view for _, view in rows], next_position=next_position)


_COLUMNS = (
    "id", "customer_id", "product_name", "quantity", "price", "currency", "total", "status",
    "payment_status", "version", "created_at", "updated_at", "cancellation_reason",
)  # fmt: skip
# What a newer version of an order changes in its row; the rest is fixed when it is placed.
_UPDATED = ("status", "payment_status", "version", "updated_at", "cancellation_reason")


def _newest(views: Sequence[OrderView]) -> list[OrderView]:
    """One view per order, its newest version, in the order the orders first appear (an
    upsert may not touch a row twice in one statement)."""
    newest: dict[Any, OrderView] = {}
    for view in views:
        if view.id not in newest or newest[view.id].version < view.version:
            newest[view.id] = view
    return list(newest.values())


class PostgresOrderRecorder(OneTripRecorder):
    """The library's recorder, appending in one statement, which also upserts the summary
    rows passed to `save(..., order_views=[...])`, as JSON (servicekit.recorder)."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        table = Identifier(self.datastore.schema, SUMMARIES)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {t} ("
                " seq bigserial UNIQUE, id uuid PRIMARY KEY, customer_id bigint NOT NULL,"
                " product_name text NOT NULL, quantity integer NOT NULL,"
                " price numeric(12, 2) NOT NULL, total numeric(18, 2) NOT NULL,"
                " status text NOT NULL, version bigint NOT NULL,"
                " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)"
            ).format(t=table)
        )
        self.sql_create_statements.append(  # columns added since the table was first made
            SQL(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS currency text NOT NULL DEFAULT 'EUR',"
                " ADD COLUMN IF NOT EXISTS cancellation_reason text,"
                " ADD COLUMN IF NOT EXISTS payment_status text NOT NULL DEFAULT 'pending'"
            ).format(t=table)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE INDEX IF NOT EXISTS order_summaries_customer_seq"
                " ON {t} (customer_id, seq DESC)"
            ).format(t=table)
        )
        self._select = SQL(
            "SELECT seq, {columns} FROM {t}"
            " WHERE (%(customer)s::bigint IS NULL OR customer_id = %(customer)s)"
            " AND (%(before)s::bigint IS NULL OR seq < %(before)s)"
            " ORDER BY seq DESC LIMIT %(limit)s"
        ).format(t=table, columns=SQL(", ").join(map(Identifier, _COLUMNS)))
        self._select_position = SQL(
            "SELECT notification_id FROM {events}"
            " WHERE originator_id = %s AND originator_version = %s"
        ).format(events=Identifier(self.datastore.schema, self.events_table_name))

    def extra_sql(self) -> Composable:
        table = Identifier(self.datastore.schema, SUMMARIES)
        columns = SQL(", ").join(map(Identifier, _COLUMNS))
        return SQL(
            "IF extra IS NOT NULL THEN"
            " INSERT INTO {t} AS s ({columns})"
            " SELECT {columns} FROM jsonb_populate_recordset(NULL::{t}, extra)"
            " ON CONFLICT (id) DO UPDATE SET {updates} WHERE s.version < excluded.version;"
            " END IF;"
        ).format(
            t=table,
            columns=columns,
            updates=SQL(", ").join(
                SQL("{c} = excluded.{c}").format(c=Identifier(c)) for c in _UPDATED
            ),
        )

    def extra_param(self, **kwargs: Any) -> str | None:
        views: Sequence[OrderView] = kwargs.get("order_views", ())
        return msgspec.json.encode(_newest(views)).decode() if views else None

    def select_order_page(
        self, *, customer_id: int | None, limit: int, before: int | None
    ) -> OrderPage:
        params = {"customer": customer_id, "before": before, "limit": limit + 1}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select, params, prepare=True)
            rows = [(row.pop("seq"), OrderView(**row)) for row in curs.fetchall()]
        return _page(rows, limit)

    def position_of(self, order_id: Any, *, version: int) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_position, (order_id, version), prepare=True)
            row = curs.fetchone()
        return None if row is None else int(row["notification_id"])


class InMemoryOrderRecorder(POPOApplicationRecorder):
    """The same summary semantics without a database, for unit tests (order_service/tests/
    test_summaries.py runs the same tests against both)."""

    def __init__(self) -> None:
        super().__init__()
        self._summaries: dict[Any, tuple[int, OrderView]] = {}
        self._seq = itertools.count(1)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self._database_lock:  # events and summaries change together or not at all
            ids = super().insert_events(stored_events, **kwargs)
            for view in _newest(kwargs.get("order_views", ())):
                self._upsert(view)
            return ids

    def _upsert(self, view: OrderView) -> None:
        """As the Postgres upsert: a new order gets the next position; a newer version of a
        listed one changes only the _UPDATED fields, in place."""
        if view.id not in self._summaries:
            self._summaries[view.id] = (next(self._seq), view)
            return
        seq, old = self._summaries[view.id]
        if old.version < view.version:
            changes = {field: getattr(view, field) for field in _UPDATED}
            self._summaries[view.id] = (seq, msgspec.structs.replace(old, **changes))

    def select_order_page(
        self, *, customer_id: int | None, limit: int, before: int | None
    ) -> OrderPage:
        with self._database_lock:
            rows = sorted(self._summaries.values(), key=lambda row: -row[0])
        rows = [
            row
            for row in rows
            if (customer_id is None or row[1].customer_id == customer_id)
            and (before is None or row[0] < before)
        ]
        return _page(rows[: limit + 1], limit)

    def position_of(self, order_id: Any, *, version: int) -> int | None:
        with self._database_lock:  # a notification id is an index into the log, from 1
            index = self._stored_events_index[str(order_id)].get(version)
        return None if index is None else index + 1
