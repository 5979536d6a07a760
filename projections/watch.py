"""Reads that wait for a read model to reach a position, woken by the projector's commit.

A projector's transaction that moves a read model's position also NOTIFYs
`projection_positions` with `<name>:<position>` (projections.tracking), delivered when it
commits. One `PositionWatch` per process LISTENs on one connection and keeps the newest
position of every read model of its database; a reader that needs a position not reached
yet waits on a future the watch resolves, so however many readers wait, none of them polls.

What a reader is answered from is the database, never the watch: `read_at_least` reads the
row and the read model's position in one statement, and only waits (then reads again) while
that position is short of what was asked. A watch that missed a notification (its connection
dropped) re-reads every position when it reconnects, so a waiter is late at worst, never
wrong; one still short at its deadline is told so (`BehindError`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo

log = logging.getLogger(__name__)

CHANNEL = "projection_positions"
APPLICATION_NAME = "position-watch"  # how its connection shows in pg_stat_activity
RECONNECT_AFTER = 1.0  # seconds between attempts while the database cannot be reached

T = TypeVar("T")
Read = Callable[[], Awaitable[tuple[T, int]]]  # () -> (what was read, the position it is at)


class BehindError(Exception):
    """The read model had not reached the position asked for by the deadline."""

    def __init__(self, name: str, wanted: int, position: int) -> None:
        super().__init__(f"{name} is at position {position}, short of {wanted}")
        self.name = name
        self.wanted = wanted
        self.position = position


def parse_notification(payload: str) -> tuple[str, int] | None:
    """(read model, position) from a `<name>:<position>` payload; None if it is not one."""
    name, _, position = payload.rpartition(":")
    if not name or not position.isdigit():
        return None
    return name, int(position)


class PositionWatch:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.positions: dict[str, int] = {}  # the newest known, by read model
        self.listening = False  # LISTENing now: notifications reach it as they commit
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="position-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for waiters in self._waiters.values():
            for _, waiter in waiters:
                waiter.cancel()
        self._waiters.clear()

    async def read_at_least(
        self, name: str, wanted: int, read: Read[T], within: float
    ) -> tuple[T, int]:
        """`read()`'s answer once it is at `wanted` or beyond; raises BehindError if it is
        still short after `within` seconds."""
        started = time.monotonic()
        while True:
            found, position = await read()
            if position >= wanted:
                return found, position
            remaining = within - (time.monotonic() - started)
            if remaining <= 0:
                raise BehindError(name, wanted, position)
            if self.positions.get(name, 0) >= wanted:
                # The watch is ahead of what was read: news that came in during the read, or
                # a position set back (a reset). The database decides: read again, fresh.
                self.positions[name] = position
                continue
            if not await self.reached(name, wanted, remaining):
                raise BehindError(name, wanted, position)

    async def reached(self, name: str, position: int, within: float) -> bool:
        """Whether the read model reaches `position` within `within` seconds (at once if
        it is known to be there)."""
        if self.positions.get(name, 0) >= position:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (position, waiter)
        self._waiters.setdefault(name, []).append(entry)
        try:
            await asyncio.wait_for(waiter, within)
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(name, [])
            if entry in waiters:
                waiters.remove(entry)
        return True

    def _advanced(self, name: str, position: int) -> None:
        """A read model's position, as notified or read: wakes those waiting for it."""
        if position <= self.positions.get(name, 0):
            return
        self.positions[name] = position
        waiters = self._waiters.get(name)
        if not waiters:
            return
        self._waiters[name] = [w for w in waiters if w[0] > position]
        for wanted, waiter in waiters:
            if wanted <= position and not waiter.done():
                waiter.set_result(None)

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.info("position watch: %s; listening again in %.0f s", exc, RECONNECT_AFTER)
            finally:
                self.listening = False
            await asyncio.sleep(RECONNECT_AFTER)

    async def _listen_once(self) -> None:
        """LISTEN, then read every position (so nothing committed before the LISTEN is
        missed), then follow the notifications until the connection fails."""
        # A connection that only listens sends nothing: the keepalives every connection has
        # (servicekit.postgres.KEEPALIVES) find a dead peer in seconds.
        conninfo = make_conninfo(
            self.conninfo, connect_timeout=2, application_name=APPLICATION_NAME
        )
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            await self._read_all(conn)
            self.listening = True
            async for notification in conn.notifies():
                if (parsed := parse_notification(notification.payload)) is not None:
                    self._advanced(*parsed)

    async def _read_all(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Every read model's position (the table is the schema step's, made before)."""
        cursor = await conn.execute("SELECT name, position FROM projection_positions")
        for name, position in await cursor.fetchall():
            self._advanced(name, int(position))
