"""Pins for every reach into a library's internals, so an upgrade fails here, loudly.

The reaches, and who makes them:
- `servicekit.failfast.PostgresFactory` swaps the datastore's `pool` for a GuardedPool that
  has only the methods the datastore calls on it;
- `servicekit.recorder.OneTripRecorder` and `order_service.recorders` append psycopg SQL to
  the recorder's `sql_create_statements`, and write the events table's columns and NOTIFY its
  `channel_name` from a function of their own;
- `servicekit.eventlog` and the recorders use the datastore's `schema`, `get_connection`,
  `originator_id_type` and `lock_timeout`, and the recorder's `events_table_name`;
- `servicekit.failfast` reads psycopg_pool's `get_stats()["connections_errors"]`;
- `servicekit.relay.Publisher` publishes through aio-pika's own aiormq channel, with
  `basic_publish(..., wait=False)`, which only the concrete `aiormq.Channel` declares;
- `servicekit.tracing.stamp` sets an attribute `traceparent` on a domain event that its
  class does not declare: the mapper stores every attribute of an event, and replay passes
  an event method only the attributes it names.

Each test states what the code relies on; a version pin says which releases were read.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Iterator
from importlib.metadata import version

import aiormq
import psycopg
import pytest
from eventsourcing import postgres
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg.sql import SQL
from psycopg_pool import ConnectionPool

from servicekit.failfast import GuardedPool
from servicekit.postgres import PostgresSettings
from servicekit.schema import event_store_migrations
from tests.support import Databases


def test_the_releases_these_pins_were_read_from() -> None:
    # On an upgrade: read the reaches listed above against the new source, then move the pin.
    assert version("eventsourcing").startswith("9.5.")
    assert version("psycopg-pool").startswith("3.3.")
    assert version("aiormq").startswith("7.2.")


def test_the_datastore_calls_only_what_guarded_pool_offers() -> None:
    source = inspect.getsource(postgres.PostgresDatastore)
    called = set(re.findall(r"self\.pool\.(\w+)", source))

    assert called <= {name for name in dir(GuardedPool) if not name.startswith("_")} | {
        "__enter__",
        "__exit__",
    }
    assert {"connection", "open", "close"} <= called


@pytest.fixture
def database(databases: Databases) -> PostgresSettings:
    return databases.fresh("internals", event_store_migrations(Application))


@pytest.fixture
def app(database: PostgresSettings) -> Iterator[Application[uuid.UUID]]:
    application = Application[uuid.UUID](env=database.eventsourcing_env(pool_size=2))
    yield application
    application.close()


@pytest.mark.integration
def test_the_factory_keeps_the_swapped_pool_and_the_datastore_uses_it(
    app: Application[uuid.UUID],
) -> None:
    datastore = app.factory.datastore  # type: ignore[attr-defined]
    pool = datastore.pool
    assert isinstance(pool, GuardedPool)
    taken = []
    real = pool.connection

    def counting(timeout: float | None = None) -> object:
        taken.append(timeout)
        return real(timeout)

    pool.connection = counting  # type: ignore[method-assign,assignment]
    with datastore.get_connection() as conn:
        assert isinstance(conn, psycopg.Connection)

    assert len(taken) == 1


@pytest.mark.integration
def test_the_recorder_and_datastore_attributes_the_code_reads(
    app: Application[uuid.UUID], database: PostgresSettings
) -> None:
    recorder = app.recorder
    datastore = app.factory.datastore  # type: ignore[attr-defined]

    assert isinstance(recorder, postgres.PostgresApplicationRecorder)
    assert recorder.events_table_name == "application_events"  # named after the app
    assert isinstance(recorder.channel_name, str)
    assert recorder.channel_name
    assert isinstance(recorder.sql_create_statements, list)
    assert datastore.schema == "public"  # POSTGRES_SCHEMA unset
    assert datastore.originator_id_type == "uuid"
    assert float(datastore.lock_timeout) >= 0
    with psycopg.connect(database.conninfo()) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (recorder.events_table_name,),
            )
        }
    # What OneTripRecorder's append function inserts into, and what it returns.
    assert columns == {
        "originator_id",
        "originator_version",
        "topic",
        "state",
        "notification_id",
    }


@pytest.mark.integration
def test_a_statement_appended_to_the_create_statements_is_run_by_create_table(
    app: Application[uuid.UUID], database: PostgresSettings
) -> None:
    recorder = app.recorder
    assert isinstance(recorder, postgres.PostgresApplicationRecorder)
    recorder.sql_create_statements.append(SQL("CREATE TABLE IF NOT EXISTS pinned (i int)").format())

    recorder.create_table()

    with psycopg.connect(database.conninfo()) as conn:
        assert conn.execute("SELECT to_regclass('pinned')").fetchone() == ("pinned",)


def test_the_pool_counts_its_failed_connection_attempts_under_this_name() -> None:
    pool = ConnectionPool(
        "host=127.0.0.1 port=1 connect_timeout=1", min_size=1, open=False, reconnect_timeout=0.5
    )
    pool.open(wait=False)
    try:
        with pytest.raises(Exception):  # noqa: B017,PT011 - whatever the pool raises
            pool.wait(timeout=1.0)
        stats = pool.get_stats()
    finally:
        pool.close(timeout=0)

    assert stats.get("connections_errors", 0) >= 1


def test_a_publish_may_skip_waiting_for_its_frames_to_be_flushed() -> None:
    # wait=True (aio-pika's Exchange.publish) holds the channel's lock until the connection's
    # writer has flushed the message; wait=False only enqueues it, under the same lock, and
    # the confirm is awaited either way.
    wait = inspect.signature(aiormq.Channel.basic_publish).parameters["wait"]
    source = inspect.getsource(aiormq.Channel.basic_publish)

    assert wait.default is True
    assert "drain_future = self.create_future() if wait else None" in source
    assert source.index("async with self.lock:") < source.index("await self.write_queue.put(")
    assert "return await confirmation" in source


class Named(Aggregate):
    """An aggregate of the test's own, to store and replay an event with an extra attribute."""

    def __init__(self, name: str) -> None:
        self.name = name

    @event("Renamed")
    def rename(self, name: str) -> None:
        self.name = name


def test_an_attribute_an_event_does_not_declare_is_stored_and_ignored_by_replay() -> None:
    app = Application[uuid.UUID]()  # in memory: the library's own mapper and transcoder
    named = Named(name="widget")
    named.rename("gadget")
    stamp = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    for pending in named.pending_events:
        object.__setattr__(pending, "traceparent", stamp)
    app.save(named)

    stored = list(app.recorder.select_events(named.id))
    read = [app.mapper.to_domain_event(e) for e in stored]
    replayed: Named = app.repository.get(named.id)

    assert [vars(e)["traceparent"] for e in read] == [stamp, stamp]
    assert isinstance(replayed, Named)
    assert (replayed.name, replayed.version) == ("gadget", 2)
    app.close()
