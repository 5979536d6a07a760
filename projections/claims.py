"""Who applies which partition: a heartbeat table and an advisory lock per partition.

No coordinator of our own, and no leader: every projector process of a group (the
projectors of one set of read models in one layout) does the same thing on its own, on a
connection of its own to the read model's database, every `interval`:

1. it writes its heartbeat (`projector_members`);
2. it counts the members seen within `ttl`, itself included, and works out its fair share
   of the P partitions: P // N, one more for the first P mod N members in name order;
3. it lets go of the partitions above its share, and tries to take free ones up to it,
   each with `pg_try_advisory_lock`, held by that connection's session.

A partition's lock is therefore held by one session at most, and released by Postgres the
moment the session ends: a process killed -9 loses its locks at once, and its heartbeat
stops, so within `ttl` plus an `interval` the others count one member fewer and take its
partitions. A process cut off from the database cannot tell, and may go on applying a
batch it already holds while another process takes the partition: the batch's own
transaction lock and position check (projections.tracking) make the later of the two a
duplicate, so nothing is applied twice (docs/decisions/0015-partitioned-read-models.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from servicekit.messaging import keep_running

log = logging.getLogger(__name__)

# Created by the schema step (customer_service.store.MIGRATIONS), never by a projector.
MEMBERS_TABLE = """CREATE TABLE IF NOT EXISTS projector_members (
    grp text NOT NULL,
    member text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (grp, member))"""

HEARTBEAT = (
    "INSERT INTO projector_members (grp, member) VALUES (%s, %s)"
    " ON CONFLICT (grp, member) DO UPDATE SET seen_at = now()"
)
LIVE = (
    "SELECT member FROM projector_members WHERE grp = %s"
    " AND seen_at > now() - make_interval(secs => %s) ORDER BY member"
)
FORGET_GONE = "DELETE FROM projector_members WHERE grp = %s AND seen_at < now() - interval '1 hour'"
LEAVE = "DELETE FROM projector_members WHERE grp = %s AND member = %s"
TRY_CLAIM = "SELECT pg_try_advisory_lock(hashtext('claim:' || %s || ':' || %s))"
RELEASE = "SELECT pg_advisory_unlock(hashtext('claim:' || %s || ':' || %s))"

OnChange = Callable[[frozenset[str]], Awaitable[None]]


def member_name() -> str:
    """A name no other process of any host shares: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def fair_share(partitions: int, members: Sequence[str], me: str) -> int:
    """How many of the partitions `me` should hold among `members` (sorted by name)."""
    ranked = sorted({*members, me})
    base, extra = divmod(partitions, len(ranked))
    return base + (1 if ranked.index(me) < extra else 0)


@dataclass(frozen=True, kw_only=True)
class ClaimSettings:
    conninfo: str  # the read model's database
    group: str  # the projectors that share these partitions
    partitions: tuple[str, ...]  # their names, in order
    member: str  # this process (member_name())
    interval: float = 1.0  # between two heartbeats
    ttl: float = 3.0  # a member unseen this long is gone
    max_backoff: float = 5.0


class Claims:
    """This process's share of the partitions, kept fair as members come and go; every
    change goes to `on_change` with the partitions held from then on."""

    def __init__(self, settings: ClaimSettings) -> None:
        self.settings = settings
        self.held: frozenset[str] = frozenset()
        self.members = 0  # live members at the last heartbeat, this one included

    async def run(self, stopping: asyncio.Event, on_change: OnChange) -> None:
        """Hold a fair share until `stopping`; when the database is lost, hold nothing
        (on_change is told) and try again, backing off."""
        await keep_running(
            f"claims {self.settings.group}",
            lambda: self._session(stopping, on_change),
            stopping,
            max_backoff=self.settings.max_backoff,
        )

    async def _session(self, stopping: asyncio.Event, on_change: OnChange) -> None:
        settings = self.settings
        try:
            async with await psycopg.AsyncConnection.connect(
                settings.conninfo,
                autocommit=True,
                application_name=f"claims {settings.member}"[:63],  # who holds what, to see
            ) as db:
                while not stopping.is_set():
                    await self._beat(db, on_change)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), settings.interval)
                await self._set(frozenset(), on_change)  # stop applying before letting go
                await db.execute(LEAVE, (settings.group, settings.member))
        finally:  # the session's locks end with it, whatever ended it
            await self._set(frozenset(), on_change)

    async def _beat(self, db: psycopg.AsyncConnection[Any], on_change: OnChange) -> None:
        settings = self.settings
        group, me = settings.group, settings.member
        await db.execute(HEARTBEAT, (group, me))
        await db.execute(FORGET_GONE, (group,))
        cursor = await db.execute(LIVE, (group, settings.ttl))
        members = [str(row[0]) for row in await cursor.fetchall()]
        self.members = len({*members, me})
        share = fair_share(len(settings.partitions), members, me)
        held = set(self.held)
        if len(held) > share:  # stop applying the ones let go, then release them
            keep = frozenset(sorted(held)[:share])
            await self._set(keep, on_change)
            for partition in sorted(held - keep):
                await db.execute(RELEASE, (group, partition))
            return
        taken: set[str] = set()
        for partition in settings.partitions:
            if len(held) + len(taken) >= share:
                break
            if partition in held:
                continue
            cursor = await db.execute(TRY_CLAIM, (group, partition))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                taken.add(partition)
        if taken:
            await self._set(frozenset(held | taken), on_change)

    async def _set(self, held: frozenset[str], on_change: OnChange) -> None:
        if held == self.held:
            return
        gained, lost = sorted(held - self.held), sorted(self.held - held)
        self.held = held
        log.info(
            "claims %s: %s holds %s (took %s, let go %s)",
            self.settings.group,
            self.settings.member,
            sorted(held) or "nothing",
            gained or "none",
            lost or "none",
        )
        await on_change(held)
