"""The schema step: migrations applied in order, each once, one migrator at a time."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from eventsourcing.application import Application

from servicekit.postgres import PostgresSettings
from servicekit.schema import Step, event_store_migrations, migrate, migrated
from tests.support import Databases, tables

pytestmark = pytest.mark.integration


def test_steps_are_applied_once_and_a_step_appended_later_alone(databases: Databases) -> None:
    settings = PostgresSettings(dbname=f"schema_{uuid.uuid4().hex[:12]}")
    databases.made.append(settings)  # migrate creates it; the run drops it
    steps: list[Step] = ["CREATE TABLE a (i int)"]

    assert migrate(settings, steps) == 1
    assert migrate(settings, steps) == 0  # "CREATE TABLE a" again would fail
    seen: list[str] = []
    steps += ["CREATE TABLE b (i int)", lambda given: seen.append(given.dbname)]

    assert migrate(settings, steps) == 2
    assert tables(settings) >= {"a", "b", "schema_migrations"}
    assert seen == [settings.dbname]


def test_a_step_that_fails_records_nothing_of_its_batch(databases: Databases) -> None:
    settings = databases.fresh("schema_fail")
    steps: list[Step] = ["CREATE TABLE c (i int)", "CREATE TABLE c (i int)"]

    with pytest.raises(psycopg.errors.DuplicateTable):
        migrate(settings, steps)

    assert "c" not in tables(settings)
    assert migrate(settings, steps[:1]) == 1


def test_migrators_starting_together_take_turns(databases: Databases) -> None:
    settings = databases.fresh("schema_turns")
    steps: list[Step] = ["CREATE TABLE d (i int)"]  # a second run of it would fail

    with ThreadPoolExecutor(max_workers=4) as pool:
        applied = list(pool.map(lambda _: migrate(settings, steps), range(4)))

    assert sorted(applied) == [0, 0, 0, 1]


def test_a_process_opens_the_library_tables_made_by_the_step_with_creation_off(
    databases: Databases,
) -> None:
    settings = databases.fresh("schema_library")
    env = settings.eventsourcing_env(pool_size=1)
    assert env["CREATE_TABLE"] == "no"

    app = migrated(
        lambda: Application[uuid.UUID](env=env), settings, event_store_migrations(Application)
    )
    try:
        assert app.recorder.max_notification_id() in (None, 0)
    finally:
        app.close()
    assert {"application_events", "relay_positions"} <= tables(settings)


def test_an_up_to_date_database_is_read_without_waiting_for_a_migrator(
    databases: Databases,
) -> None:
    steps: list[Step] = ["CREATE TABLE e (i int)"]
    settings = databases.fresh("schema_current", steps)
    with (
        ThreadPoolExecutor(max_workers=1) as pool,  # left last: the lock is gone by then
        psycopg.connect(settings.conninfo("postgres"), autocommit=True) as migrator,
    ):
        # Another migrator holds the lock every migration takes, as if it were mid-way.
        migrator.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"create:{settings.dbname}",))
        checked = pool.submit(migrate, settings, steps)

        assert checked.result(timeout=10) == 0  # it would wait here for the lock
