"""Faults that take whole hosts and engine nodes away, on the multi-host bed, each under
load through HAProxy and ending with the fault suite's checks (tests.faults.harness): every
acknowledged order stored, counted exactly once and settled exactly once, `verify` clean,
and how long the system took to catch up recorded.

One bed serves them all, in this order; the Postgres failover comes last, since it leaves
the bed without a standby.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.bed import Bed
from tests.cluster.conftest import BedSystem
from tests.faults.harness import ORDERS, run_scenario
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

CUT_FOR = 20.0  # seconds an app host is off the network
THROUGH_THE_PROXY = frozenset({"502 upstream_failed", "504 upstream_timeout"})


async def test_a_projector_added_and_one_removed_while_partitions_are_applied(
    bed: Bed, system: BedSystem
) -> None:
    host = bed.network["app2"]
    extra: list[subprocess.Popen[bytes]] = []

    def members() -> list[str]:
        with psycopg.connect(system.customers_db.conninfo()) as conn:
            rows = conn.execute(
                "SELECT member FROM projector_members WHERE seen_at > now() - interval '3 s'"
            ).fetchall()
        return [str(row[0]) for row in rows]

    async def add() -> None:
        env = {**bed.env(), "PROJECTOR_METRICS_PORT": "9115"}  # app2's own has 9105
        log = bed.root / "extra-projector.log"
        command = (sys.executable, "-m", "ordersystem", "project", "orders-count")
        extra.append(host.start(*command, "orders-by-status", env=env, log=log))
        joined = f":{extra[0].pid}:"  # its member name: host, pid, a random part

        async def taking_its_share() -> bool:
            return any(joined in member for member in await asyncio.to_thread(members))

        await eventually(taking_its_share, within=60, what="the added projector to join")

    def remove() -> None:
        extra[0].send_signal(signal.SIGTERM)  # as a scale-down does: it hands its partitions on
        assert extra[0].wait(timeout=30) == 0

    try:
        await run_scenario(system, "a projector added, then removed", add, remove, retry=True)
    finally:
        for process in extra:
            if process.poll() is None:
                process.kill()


async def test_a_rabbitmq_node_killed_then_brought_back(bed: Bed, system: BedSystem) -> None:
    assert bed.rabbitmq is not None
    node = bed.rabbitmq.nodes[0]  # the first in RABBITMQ_URL: where most connections are

    await run_scenario(
        system, "a RabbitMQ node killed -9, then started", node.kill, node.start, retry=True
    )

    assert bed.rabbitmq.running() == {n.node for n in bed.rabbitmq.nodes}  # rejoined


async def test_an_app_host_killed_then_restarted(bed: Bed, system: BedSystem) -> None:
    app = bed.apps[0]

    def kill() -> None:
        assert app.kill() > 0  # every process on the host, the supervisor too

    figures = await run_scenario(
        system,
        "an app host killed -9 (every process), then restarted",
        kill,
        app.start,
        commits_may_go_unheard=True,  # a COMMIT done just before the host died, unanswered
        refusals=THROUGH_THE_PROXY,
        retry=True,
    )
    assert figures.created >= ORDERS * 9 // 10  # the other host took the load meanwhile


async def test_an_app_host_cut_off_for_20_s_then_restored(bed: Bed, system: BedSystem) -> None:
    host = bed.apps[1].host
    cut_at: list[float] = []

    def cut() -> None:
        host.cut()
        cut_at.append(time.monotonic())

    async def restore() -> None:
        # The fault's length is the scenario's own: the host stays off for CUT_FOR seconds,
        # however fast the load around it went.
        await asyncio.sleep(max(0.0, cut_at[0] + CUT_FOR - time.monotonic()))
        host.restore()

    try:
        figures = await run_scenario(
            system,
            f"an app host cut off for {CUT_FOR:.0f} s, then restored",
            cut,
            restore,
            commits_may_go_unheard=True,  # its COMMITs' answers may be cut off midway
            # Back on the network, the host's order service may still hold its circuit to
            # the customer service open from the cut (its lookups timed out meanwhile)
            # when HAProxy gives it orders again: a fast 503 until its next trial call.
            refusals=THROUGH_THE_PROXY | {"503 customer_service_unavailable"},
            retry=True,
        )
    finally:
        host.restore()
    assert figures.created >= ORDERS * 9 // 10  # the other host took the load meanwhile


async def test_the_postgres_primary_killed_and_the_standby_promoted(
    bed: Bed, system: BedSystem
) -> None:
    pair = bed.postgres
    assert pair is not None

    def fail_over() -> None:
        pair.kill_primary()
        pair.promote()  # as failover tooling does, once it sees the primary gone

    await run_scenario(
        system,
        "the Postgres primary killed -9, the standby promoted",
        fail_over,  # no healing step: the system must find the new primary by itself
        commits_may_go_unheard=True,
        # Refused by the APIs while no database takes writes, or by HAProxy itself once
        # their readiness (which asks the database) has taken them all out of its pool.
        refusals=THROUGH_THE_PROXY
        | {"503 database_unavailable", "503 customer_service_unavailable", "503 no_api_host"},
        retry=True,
    )
