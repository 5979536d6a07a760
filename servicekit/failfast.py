"""Fail fast while Postgres is unreachable, instead of waiting out the library's retries.

The eventsourcing library retries every recorder call ten times on an OperationalError, and
each attempt waits up to the pool's timeout for a connection. With the database down, one
read took 52 s to fail. Here the library's pool is wrapped: a call that finds the pool's
connection attempts failing (or its connection lost) closes a gate, and while it is closed
calls fail at once with DatabaseUnavailableError (which the library does not retry, and the
APIs answer with a 503). One call per `probe_every` seconds is let through to try again;
getting a connection opens the gate, whatever the call then does with it (a probe that
ends in, say, a duplicate-key error must not keep the gate closed: a consumer whose
redeliveries all end so would never get through). A pool that is merely busy closes nothing.

`PERSISTENCE_MODULE=servicekit.failfast:PostgresFactory` selects it
(`PostgresSettings.eventsourcing_env` does).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any

import psycopg
from eventsourcing import postgres
from eventsourcing.utils import Environment
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from servicekit import metrics
from servicekit.postgres import KEEPALIVES, READ_WRITE

SHORT_WAIT = 0.25  # seconds between looks at the pool's count of failed connection attempts


class DatabaseUnavailableError(Exception):
    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(f"database unavailable: {reason}")
        self.retry_after = retry_after


class DatabaseGate:
    """Open while connections come; closed after a failure, with one probe per interval."""

    def __init__(
        self,
        *,
        probe_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        name: tuple[str, str] | None = None,  # (database, pool): names its metrics
    ) -> None:
        # Its gauge (closed: 1) and its count of closings; an unnamed gate has none.
        self._metrics = (
            (metrics.GATE_CLOSED.labels(*name), metrics.GATE_CLOSINGS.labels(*name))
            if name
            else None
        )
        if self._metrics is not None:
            self._metrics[0].set(0)
        self.probe_every = probe_every
        self.clock = clock
        self._lock = threading.Lock()
        self._reason = ""  # why it closed; "" while open
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        return not self._reason

    def enter(self) -> None:
        """Return when the call may go to the database; raise DatabaseUnavailableError if not."""
        if not self._reason:  # open: every database call passes here, so no lock for it
            return
        with self._lock:
            if not self._reason:
                return
            now = self.clock()
            if now >= self._next_probe:  # this call is the probe; the others keep failing
                self._next_probe = now + self.probe_every
                return
            raise DatabaseUnavailableError(self._reason, self._next_probe - now)

    def failed(self, reason: str) -> None:
        with self._lock:
            if not self._reason:
                self._next_probe = self.clock() + self.probe_every
                if self._metrics is not None:
                    self._metrics[0].set(1)
                    self._metrics[1].inc()
            self._reason = reason or "no connection"

    def succeeded(self) -> None:
        if not self._reason:  # already open, as almost always
            return
        with self._lock:
            self._reason = ""
            if self._metrics is not None:
                self._metrics[0].set(0)


class Acquisition:
    """One call's wait for a pooled connection, in short waits.

    Between waits it looks at the pool's count of failed connection attempts: when that
    grows, the database is unreachable and the gate closes at once, rather than after the
    whole timeout. A pool that is merely busy refuses this call only (after the timeout),
    and leaves the gate open.
    """

    def __init__(self, pool: Any, gate: DatabaseGate, timeout: float) -> None:
        self.pool = pool
        self.gate = gate
        self.deadline = time.monotonic() + timeout
        self.errors = self._errors()

    def next(self) -> float:
        """How long the next wait for a connection may be."""
        return min(SHORT_WAIT, max(0.0, self.deadline - time.monotonic()))

    def failed(self, exc: psycopg.OperationalError) -> None:
        """After a wait came back without a connection: return to wait again, or raise."""
        if not isinstance(exc, PoolTimeout) or self._errors() > self.errors:
            reason = "cannot connect" if isinstance(exc, PoolTimeout) else str(exc)
            self.gate.failed(reason)
            raise DatabaseUnavailableError(reason, self.gate.probe_every) from exc
        if time.monotonic() >= self.deadline:
            raise DatabaseUnavailableError("no free connection", 1.0) from exc

    def _errors(self) -> int:
        return int(self.pool.get_stats().get("connections_errors", 0))


class GuardedPool:
    """The library's pool behind a DatabaseGate: the methods its datastore calls, no more."""

    def __init__(self, pool: Any, gate: DatabaseGate) -> None:
        self.pool = pool
        self.gate = gate

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        self.pool.open(wait, timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.pool.close(timeout)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        self.gate.enter()
        wait = Acquisition(self.pool, self.gate, self.pool.timeout if timeout is None else timeout)
        while True:
            try:
                conn = self.pool.getconn(wait.next())
                break
            except psycopg.OperationalError as exc:  # PoolTimeout is one
                wait.failed(exc)
        self.gate.succeeded()  # the pool checked it: the database answers
        try:
            with conn:
                yield conn
        except psycopg.OperationalError:
            if conn.broken:  # the server went away mid-call: the library's retry will fail fast
                self.gate.failed("connection lost")
            raise
        finally:
            self.pool.putconn(conn)

    def __enter__(self) -> GuardedPool:
        self.pool.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.pool.__exit__(exc_type, exc_val, exc_tb)


class GuardedAsyncPool:
    """A psycopg AsyncConnectionPool behind a DatabaseGate.

    With `ping_idle_after`, a connection that has been idle that long is checked (an empty
    query) before it is handed out, and replaced if dead: a server restart is noticed on
    the first call after it, without a round trip before every call (a pool's own `check`
    pings every time).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        gate: DatabaseGate | None = None,
        *,
        ping_idle_after: float | None = None,
    ) -> None:
        self.pool = pool
        self.gate = gate or DatabaseGate()
        self.ping_idle_after = ping_idle_after
        self._returned: dict[int, float] = {}  # id of a pooled connection: when it came back

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        self.gate.enter()
        wait = Acquisition(self.pool, self.gate, self.pool.timeout)
        while True:
            try:
                conn = await self.pool.getconn(wait.next())
            except psycopg.OperationalError as exc:
                wait.failed(exc)
                continue
            if await self._alive(conn):
                break
        self.gate.succeeded()
        try:
            async with conn:
                yield conn
        except psycopg.OperationalError:
            if conn.broken:
                self.gate.failed("connection lost")
            raise
        finally:
            self._returned[id(conn)] = time.monotonic()
            await self.pool.putconn(conn)

    async def close(self) -> None:
        await self.pool.close()

    async def _alive(self, conn: AsyncConnection[Any]) -> bool:
        """False (and the connection back to the pool, which replaces it) when it is dead."""
        if self.ping_idle_after is None:
            return True
        returned = self._returned.pop(id(conn), -math.inf)
        if time.monotonic() - returned < self.ping_idle_after:
            return True
        try:
            await conn.execute("")
        except psycopg.OperationalError:
            await self.pool.putconn(conn)
            return False
        return True


class PostgresFactory(postgres.PostgresFactory):
    """The library's Postgres persistence, with its pool behind a DatabaseGate."""

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict), "the library passes its pool a dict of kwargs"
        kwargs.update(KEEPALIVES)  # a lost server found in seconds, as every connection does
        if "," in (env.get(self.POSTGRES_HOST) or ""):  # several hosts: only the primary will do
            kwargs["target_session_attrs"] = READ_WRITE
        gate = DatabaseGate(name=(env.get(self.POSTGRES_DBNAME) or "", "library"))
        self.datastore.pool = GuardedPool(self.datastore.pool, gate)  # type: ignore[assignment]
